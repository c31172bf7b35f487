# The README's demo: a DenseNet-BC with three blocks of three bottleneck layers (L=22, k=12) on
# scikit-learn's 8x8 digits, trained with the paper's CIFAR recipe shortened to 16 epochs.
_base_ = [
    '../_base_/models/densenet-bc-l100-k12.py',
    '../_base_/datasets/digits_bs64.py',
    '../_base_/schedules/cifar_bs64.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, growth_rate=12, depths=(3, 3, 3), init_channels=24, stem='cifar'),
        in_channels=1,
    ),
    head=dict(in_channels=69),
)

param_scheduler = dict(milestones=[8, 12])
train_cfg = dict(max_epochs=16)

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(max_keep_ckpts=1))
randomness = dict(seed=0)
