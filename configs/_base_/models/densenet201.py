_base_ = './densenet121.py'

model = dict(backbone=dict(arch='201'), head=dict(in_channels=1920))
