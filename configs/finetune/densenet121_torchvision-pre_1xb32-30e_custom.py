# As densenet121_in1k-pre_1xb32-30e_custom.py, from torchvision's ImageNet weights: the loader takes
# the backbone's tensors from torchvision's layout and leaves its classifier.
_base_ = ['./densenet121_in1k-pre_1xb32-30e_custom.py']

model = dict(backbone=dict(init_cfg=dict(checkpoint='torchvision://densenet121')))
