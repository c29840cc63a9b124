# RetinaNet, CBAM-ResNet-50 + FPN, 1x schedule, COCO 2017 (data/coco). The backbone starts from random weights unless
# model.backbone.checkpoint names a local file (e.g. an ImageNet checkpoint from tools/train.py).
_base_ = [
    './_base_/models/retinanet_fpn.py', './_base_/datasets/coco_detection.py',
    './_base_/schedules/schedule_1x.py', './_base_/default_runtime.py',
]
model = dict(backbone=dict(model_name='cbam_resnet50'))
optim_wrapper = dict(optimizer=dict(lr=0.01))
