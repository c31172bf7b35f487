# Grey images with several findings each, in mmpretrain's multi-label format (MultiLabelDataset):
# data/multilabel/images/ and meta/{train,val}.json, each file
#   {"metainfo": {"classes": ["Atelectasis", ...]},
#    "data_list": [{"img_path": "00001.png", "gt_label": [0, 5]}, {"img_path": "00002.png", "gt_label": []}]}
# gt_label lists the indices of an image's findings; an image with none has an empty list.
dataset_type = 'MultiLabelDataset'
data_root = 'data/multilabel'

# One channel: ImageNet's RGB mean and std (0-255), averaged over the channels.
data_preprocessor = dict(num_classes=14, mean=[114.5], std=[57.6])

# CheXNet's: the image resized to 224x224, flipped at random for training.
train_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'),
    dict(type='mmdensenet.ToGrayscale'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'),
    dict(type='mmdensenet.ToGrayscale'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='images',
        ann_file='meta/train.json',
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='images', ann_file='meta/val.json', pipeline=test_pipeline
    ),
)
# Sigmoid scores above 0.5 count as findings for precision, recall and F1; mean average precision
# and AUROC (ours, per finding and their mean) rank the scores.
val_evaluator = [
    dict(type='MultiLabelMetric', thr=0.5),
    dict(type='AveragePrecision'),
    dict(type='mmdensenet.AUROC'),
]

# Point the test at a held-out split: --cfg-options test_dataloader.dataset.ann_file=meta/test.json
test_dataloader = val_dataloader
test_evaluator = val_evaluator
