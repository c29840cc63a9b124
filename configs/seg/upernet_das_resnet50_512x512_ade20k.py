# UPerNet, DAS-ResNet-50, 512x512 crops, 160k iterations, ADE20K (data/ade). The backbone starts from random weights
# unless model.backbone.checkpoint names a local file.
_base_ = [
    './_base_/models/upernet.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/schedule_160k.py', './_base_/default_runtime.py',
]
model = dict(backbone=dict(model_name='das_resnet50'))
