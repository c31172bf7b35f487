# The worked example of docs/fine_tuning.md, the baseline: the digits 5-9 learnt from scratch from a
# few labelled images each, with the digits demo's net and recipe (batches of 16, 40 epochs).
# tools/demo/finetune_digits.py writes data/digits-transfer/finetune/ with train-<n>shot-seed<s>/
# (n images of each digit) and val/ (the held-out images), class folders {5,...,9}.
_base_ = ['./densenet-bc-l22-k12_1xb64-16e_digits0-4.py']

data_root = 'data/digits-transfer/finetune'

train_dataloader = dict(batch_size=16, dataset=dict(data_root=data_root, data_prefix='train-10shot-seed0'))
val_dataloader = dict(dataset=dict(data_root=data_root))

test_dataloader = val_dataloader

param_scheduler = dict(milestones=[20, 30])
train_cfg = dict(max_epochs=40)
default_hooks = dict(logger=dict(interval=1))
auto_scale_lr = dict(base_batch_size=16)
