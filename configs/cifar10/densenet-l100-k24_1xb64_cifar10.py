_base_ = [
    '../_base_/models/densenet-l100-k24.py',
    '../_base_/datasets/cifar10_bs64.py',
    '../_base_/schedules/cifar_bs64.py',
    '../_base_/default_runtime.py',
]
