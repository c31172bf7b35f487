_base_ = [
    '../_base_/models/densenet-bc-l190-k40.py',
    '../_base_/datasets/svhn_bs64.py',
    '../_base_/schedules/svhn_bs64.py',
    '../_base_/default_runtime.py',
]

# SVHN trains without augmentation, so the paper uses dropout 0.2 (here on each dense layer's new features).
model = dict(backbone=dict(drop_rate=0.2))
