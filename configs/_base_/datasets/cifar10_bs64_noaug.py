# CIFAR-10 without augmentation (the paper's C10).
_base_ = './cifar10_bs64.py'

train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))
