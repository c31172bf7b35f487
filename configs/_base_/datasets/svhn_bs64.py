# SVHN as the paper uses it: train and extra (604,388 images) for training, test for evaluation,
# no augmentation, pixels divided by 255. The images are read from an ImageNet-style folder:
# data/svhn/{train,test}/ with meta/{train,test}.txt listing "relative/path.png label" lines.
dataset_type = 'CustomDataset'
data_root = 'data/svhn'

data_preprocessor = dict(
    num_classes=10,
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    to_rgb=True,  # images load as BGR
)

# SVHN images are 32x32 already; Resize brings any other image (mmpretrain's inferencer) to the
# net's size, which export_onnx and get_flops take. mmdensenet's LoadImageFromFile is mmcv's,
# refusing first an image too large to decode safely.
pipeline = [dict(type='mmdensenet.LoadImageFromFile'), dict(type='Resize', scale=32), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='train', ann_file='meta/train.txt', pipeline=pipeline
    ),
)

val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='test', ann_file='meta/test.txt', pipeline=pipeline
    ),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
