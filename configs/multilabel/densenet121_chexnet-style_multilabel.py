# CheXNet's set-up: DenseNet-121 from ImageNet's weights, one sigmoid output per finding (14, as in
# ChestX-ray14) trained with binary cross-entropy, Adam at lr 1e-3 and batches of 16, the lr divided
# by 10 when the validation AUROC stops rising. Grey images, one input channel; the -rgb config
# takes three. The number of epochs is ours: CheXNet's paper does not give it.
_base_ = [
    '../_base_/models/densenet121.py',
    '../_base_/datasets/multilabel_grey_bs16.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(in_channels=1, init_cfg=dict(type='Pretrained', checkpoint='torchvision://densenet121')),
    head=dict(
        _delete_=True,
        type='MultiLabelLinearClsHead',
        num_classes=14,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True),
    ),
)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=0))
param_scheduler = dict(type='ReduceOnPlateauLR', monitor='auroc/mean', rule='greater', factor=0.1, patience=1)

train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` rescales lr linearly from this total batch.
auto_scale_lr = dict(base_batch_size=16)
