_base_ = './densenet-bc-l100-k12.py'

model = dict(backbone=dict(arch='l100-k24'), head=dict(in_channels=2320))
