# The embedded coins set (visiongates.data.coins_coco): real coin photos pasted onto real photos, exact masks.
# Built on first use under $VISIONGATES_DATA/coins (default data/coins); no download. One class: 'coin'. The loaders
# are coco_detection.py's with the coins set's files, batches of 4 and no aspect-ratio grouping (every image is square).
_base_ = ['./coco_detection.py']
dataset_type = 'CoinsCocoDataset'
data_root = '{{$VISIONGATES_DATA:data}}/coins/'
coins_spec = dict(num_train=400, num_val=100, image_size=128)
image_size = (128, 128)

albu = dict(
    type='Albu',
    transforms=[
        dict(type='Affine', scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), p=0.5),
        dict(type='RandomBrightnessContrast', brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        dict(type='HueSaturationValue', hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.3),
        dict(type='GaussNoise', p=0.2),
    ],
    bbox_params=dict(type='BboxParams', format='pascal_voc', label_fields=['gt_bboxes_labels', 'gt_ignore_flags'],
                     min_visibility=0.3, filter_lost_elements=True),
    keymap=dict(img='image', gt_masks='masks', gt_bboxes='bboxes'),
    skip_img_without_anno=True)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    albu,
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    batch_sampler=None,
    dataset=dict(type=dataset_type, data_root=data_root, coins_spec=coins_spec, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    dataset=dict(type=dataset_type, data_root=data_root, coins_spec=coins_spec, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator
