_base_ = './densenet-bc-l100-k12.py'

model = dict(backbone=dict(arch='bc-l190-k40'), head=dict(in_channels=2190))
