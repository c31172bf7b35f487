# A folder of one's own images, as mmpretrain's CustomDataset reads it without an annotation file:
# data/custom/{train,val}/<class>/<image> (jpg, png, ...). The classes are the sub-folders' names in
# sorted order, the same in train/ and val/; the head's num_classes is their number.
dataset_type = 'CustomDataset'
data_root = 'data/custom'

# ImageNet's normalisation and 224 px crops, as the ImageNet weights were trained.
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],  # RGB, 0-255
    std=[58.395, 57.12, 57.375],
    to_rgb=True,  # images load as BGR
)

# mmdensenet's LoadImageFromFile is mmcv's, refusing first an image too large to decode safely.
train_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train', pipeline=train_pipeline),
)

val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val', pipeline=test_pipeline),
)
# Top-1 only: top-5 needs five classes or more (topk=(1, 5) then).
val_evaluator = dict(type='Accuracy', topk=(1,))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
