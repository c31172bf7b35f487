# scikit-learn's digits (1,797 8x8 grey images of 0-9) as tools/demo/train_digits.py writes them:
# data/digits/{train,val}/ with meta/{train,val}.txt, a stratified 80/20 split.
dataset_type = 'CustomDataset'
data_root = 'data/digits'

data_preprocessor = dict(num_classes=10, mean=[127.5], std=[127.5])

# mmdensenet's LoadImageFromFile is mmcv's, refusing first an image too large to decode safely.
pipeline = [dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'), dict(type='PackInputs')]

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
