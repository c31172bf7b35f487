_base_ = './densenet-bc-l100-k12.py'

model = dict(backbone=dict(arch='bc-l250-k24'), head=dict(in_channels=1734))
