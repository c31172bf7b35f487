# CIFAR-10 with the standard augmentation (the paper's C10+): 4-pixel padded random crops and
# horizontal flips. mmpretrain reads the python version of the dataset from data/cifar10.
dataset_type = 'CIFAR10'
data_root = 'data/cifar10'

data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],  # RGB, 0-255
    std=[51.5865, 50.847, 51.255],
    to_rgb=False,  # CIFAR images load as RGB
)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# CIFAR images are 32x32 already; Resize brings any other image (mmpretrain's inferencer) to the
# net's size, which export_onnx and get_flops take.
test_pipeline = [dict(type='Resize', scale=32), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)

val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
