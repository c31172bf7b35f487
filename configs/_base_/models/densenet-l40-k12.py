_base_ = './densenet-bc-l100-k12.py'

model = dict(backbone=dict(arch='l40-k12'), head=dict(in_channels=448))
