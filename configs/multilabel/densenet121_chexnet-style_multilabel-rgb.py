# The grey config with three input channels, as CheXNet fed its X-rays: each grey image read as
# three equal channels and normalized with ImageNet's RGB mean and std, which the pretrained stem expects.
_base_ = ['./densenet121_chexnet-style_multilabel.py']

model = dict(backbone=dict(in_channels=3))
data_preprocessor = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)

train_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile', color_type='color'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile', color_type='color'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
