# CIFAR-100 without augmentation (the paper's C100).
_base_ = './cifar100_bs64.py'

train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))
