# Attention U-Net decoder over all five levels of CBAM-ResNet-50 (strides 2-32), 512x512 crops, 160k iterations, ADE20K.
_base_ = [
    './_base_/models/attention_unet.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/schedule_160k.py', './_base_/default_runtime.py',
]
model = dict(backbone=dict(model_name='cbam_resnet50'))
