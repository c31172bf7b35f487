_base_ = [
    './_base_/models/densenet201.py',
    './_base_/datasets/imagenet_bs256.py',
    './_base_/schedules/imagenet_bs1024.py',
    './_base_/default_runtime.py',
]
