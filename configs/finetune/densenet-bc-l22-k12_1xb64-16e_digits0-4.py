# The worked example of docs/fine_tuning.md, step 1: the digits demo's net and recipe, pre-trained
# on the digits 0-4 only. tools/demo/finetune_digits.py writes the class folders
# data/digits-transfer/pretrain/{train,val}/{0,...,4}/, which CustomDataset reads without meta/ files.
_base_ = ['../digits/densenet-bc-l22-k12_1xb64-16e_digits.py']

data_root = 'data/digits-transfer/pretrain'
data_preprocessor = dict(num_classes=5)

model = dict(head=dict(num_classes=5))

train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=''))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=''))
val_evaluator = dict(topk=(1,))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
