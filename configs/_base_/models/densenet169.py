_base_ = './densenet121.py'

model = dict(backbone=dict(arch='169'), head=dict(in_channels=1664))
