# Fine-tuning DenseNet-121 on a folder of one's own images (docs/fine_tuning.md), from the table's
# ImageNet checkpoint (mmpretrain's). Only the checkpoint's backbone is read (prefix='backbone.'):
# its 1000-class head is dropped and a new head for num_classes starts fresh. The backbone learns at
# a tenth of the head's lr.
_base_ = [
    '../_base_/models/densenet121.py',
    '../_base_/datasets/custom_bs32.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        # -1 trains every layer; 0 freezes the stem, k the stem and the first k dense blocks (up to 4).
        frozen_stages=-1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/densenet/'
            'densenet121_4xb256_in1k_20220426-07450f99.pth',
            prefix='backbone.',
        ),
    ),
    head=dict(num_classes=10),  # the number of class folders
)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    # Every parameter whose name holds 'backbone' gets lr x 0.1.
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
)
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=30)

train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` rescales lr linearly from this total batch.
auto_scale_lr = dict(base_batch_size=32)
