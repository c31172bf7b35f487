# The worked example of docs/fine_tuning.md, step 2: the digits 5-9 from a few labelled images each,
# as the -few baseline, but the backbone starts from the net pre-trained on the digits 0-4 and
# learns at a tenth of the head's lr. Only the checkpoint's backbone is read (prefix='backbone.');
# the head, for other digits, starts fresh.
_base_ = ['./densenet-bc-l22-k12_1xb16-40e_digits5-9-few.py']

model = dict(
    backbone=dict(
        # -1 trains every layer; 0 freezes the stem, k the stem and the first k dense blocks (up to 3).
        frozen_stages=-1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/densenet-bc-l22-k12_1xb64-16e_digits0-4/epoch_16.pth',
            prefix='backbone.',
        ),
    ),
)

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
