# The paper's SVHN recipe: the CIFAR one over 40 epochs.
_base_ = './cifar_bs64.py'

param_scheduler = dict(milestones=[20, 30])
train_cfg = dict(max_epochs=40)
