# scikit-learn's digits (1,797 8x8 grey images of 0-9) as tools/demo/train_digits.py writes them:
# data/digits/{train,val}/ with meta/{train,val}.txt, a stratified 80/20 split.
dataset_type = 'CustomDataset'
data_root = 'data/digits'

data_preprocessor = dict(num_classes=10, mean=[127.5], std=[127.5])

# Grey 8x8 images. mmdensenet's LoadImageFromFile is mmcv's, refusing first an image too large to
# decode safely. ToGrayscale turns grey an image read in colour, as mmpretrain's
# ImageClassificationInferencer reads files, and Resize brings any other image to the net's 8x8
# (export_onnx and get_flops take that size); both leave the digits as they are.
pipeline = [
    dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'),
    dict(type='mmdensenet.ToGrayscale'),
    dict(type='Resize', scale=8),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='train', ann_file='meta/train.txt', pipeline=pipeline
    ),
)

val_dataloader = dict(
    batch_size=360,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val', ann_file='meta/val.txt', pipeline=pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
