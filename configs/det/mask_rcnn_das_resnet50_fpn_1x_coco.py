# Mask R-CNN, DAS-ResNet-50 + FPN, 1x schedule, COCO 2017 instances (data/coco). The backbone starts from random
# weights unless model.backbone.checkpoint names a local file.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py', './_base_/datasets/coco_instance.py',
    './_base_/schedules/schedule_1x.py', './_base_/default_runtime.py',
]
model = dict(backbone=dict(model_name='das_resnet50'))
