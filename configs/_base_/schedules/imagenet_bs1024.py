# The paper's ImageNet recipe (lr 0.1 per 256 images, divided by 10 at epochs 30 and 60) scaled
# linearly to 1024 images per step, with a 5-epoch linear warm-up from the unscaled lr.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, nesterov=True, weight_decay=1e-4),
)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1),
]

train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` rescales lr linearly from this total batch to (GPUs x batch per GPU).
auto_scale_lr = dict(base_batch_size=1024)
