# Mask R-CNN with a DenseNet-121 backbone and FPN, COCO, 1x schedule.
# The backbone starts from torchvision's ImageNet weights converted by
#   python tools/convert_torchvision.py densenet121-a639ec97.pth checkpoints/densenet121_mm.pth
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdensenet'], allow_failed_imports=False)
# Atomic checkpoint writes, and a resumable checkpoint on SIGTERM or SIGINT, as in our own configs.
default_hooks = dict(fault_tolerance=dict(type='mmdensenet.FaultToleranceHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdensenet.DenseNet',
        arch='121',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/densenet121_mm.pth', prefix='backbone.'),
    ),
    neck=dict(in_channels=[256, 512, 1024, 1024]),
)
