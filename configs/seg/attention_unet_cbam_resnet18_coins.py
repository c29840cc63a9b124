# Attention U-Net decoder over all five levels of CBAM-ResNet-18, from scratch on the embedded coins set (128x128).
_base_ = ['./_base_/models/attention_unet.py', './_base_/coins.py']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(model_name='cbam_resnet18'),
    decode_head=dict(in_channels=[64, 64, 128, 256, 512], channels=[32, 64, 128, 256], num_classes=2))
