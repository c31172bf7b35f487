# The paper's CIFAR recipe: batch 64, 300 epochs, lr 0.1 divided by 10 at 50% and 75% of training.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
)

param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` rescales lr linearly from this total batch to (GPUs x batch per GPU).
auto_scale_lr = dict(base_batch_size=64)
