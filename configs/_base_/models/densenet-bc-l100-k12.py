# The paper's CIFAR/SVHN nets: 3x3 stem, three dense blocks at 32, 16 and 8 pixels.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmdensenet.DenseNet', arch='bc-l100-k12'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=342,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)
