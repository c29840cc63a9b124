# Mask R-CNN, hierarchical ViG-T (vig_gla_h_tiny) + FPN, 1x schedule with AdamW, COCO 2017 instances.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py', './_base_/datasets/coco_instance.py',
    './_base_/schedules/schedule_1x_adamw.py', './_base_/default_runtime.py',
]
model = dict(
    backbone=dict(model_name='vig_gla_h_tiny', out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_eval=False,
                  model_kwargs=dict(drop_path_rate=0.1)),
    neck=dict(in_channels=[96, 192, 384, 768]))
