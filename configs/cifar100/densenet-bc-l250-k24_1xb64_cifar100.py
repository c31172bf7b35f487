_base_ = [
    '../_base_/models/densenet-bc-l250-k24.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/cifar_bs64.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=100))
