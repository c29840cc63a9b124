# The embedded coins set as semantic maps (0 background, 1 coin); built on first use under $VISIONGATES_DATA/coins
# (default data/coins) from photos that scikit-image ships. See visiongates/data/coins_coco.py. The loaders are
# ade20k.py's with the coins set's folders, 128x128 crops and batches of 4 on 2 workers.
_base_ = ['./ade20k.py']
dataset_type = 'CoinsSegDataset'
data_root = '{{$VISIONGATES_DATA:data}}/coins/'
coins_spec = dict(num_train=400, num_val=100, image_size=128)
crop_size = (128, 128)
albu = dict(
    type='Albu',
    transforms=[
        dict(type='RandomBrightnessContrast', brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        dict(type='HueSaturationValue', hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.3),
        dict(type='GaussNoise', p=0.2),
    ])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    albu,
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, coins_spec=coins_spec,
                 data_prefix=dict(img_path='train', seg_map_path='semantic/train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, coins_spec=coins_spec,
                 data_prefix=dict(img_path='val', seg_map_path='semantic/val'), pipeline=test_pipeline))
test_dataloader = val_dataloader
