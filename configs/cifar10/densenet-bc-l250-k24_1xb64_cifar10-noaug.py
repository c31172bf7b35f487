_base_ = [
    '../_base_/models/densenet-bc-l250-k24.py',
    '../_base_/datasets/cifar10_bs64_noaug.py',
    '../_base_/schedules/cifar_bs64.py',
    '../_base_/default_runtime.py',
]

# Without augmentation the paper trains with dropout 0.2 (here on each dense layer's new features).
model = dict(backbone=dict(drop_rate=0.2))
