# COCO 2017 boxes and instance masks in the standard layout (see coco_detection.py).
_base_ = ['./coco_detection.py']

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Albu', transforms={{_base_.albu_transforms}}, bbox_params={{_base_.albu.bbox_params}},
         keymap=dict(img='image', gt_masks='masks', gt_bboxes='bboxes'), skip_img_without_anno=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
