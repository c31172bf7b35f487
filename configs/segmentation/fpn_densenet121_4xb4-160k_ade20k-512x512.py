# Semantic FPN with a DenseNet-121 encoder, ADE20K, mmseg's 160k schedule (needs mmsegmentation).
# The encoder starts from torchvision's ImageNet weights converted by
#   python tools/convert_torchvision.py densenet121-a639ec97.pth checkpoints/densenet121_mm.pth
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmdensenet'], allow_failed_imports=False)
# Atomic checkpoint writes, and a resumable checkpoint on SIGTERM or SIGINT, as in our own configs.
default_hooks = dict(fault_tolerance=dict(type='mmdensenet.FaultToleranceHook'))

model = dict(
    pretrained=None,  # the base's ResNet weights; ours come through the backbone's init_cfg
    backbone=dict(
        _delete_=True,
        type='mmdensenet.DenseNet',
        arch='121',
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/densenet121_mm.pth', prefix='backbone.'),
    ),
    neck=dict(in_channels=[256, 512, 1024, 1024]),
)
