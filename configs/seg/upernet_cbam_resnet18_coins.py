# UPerNet, CBAM-ResNet-18, trained from scratch on the embedded coins set (128x128; background / coin) on CPU.
_base_ = ['./_base_/models/upernet.py', './_base_/coins.py']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(model_name='cbam_resnet18'),
    decode_head=dict(in_channels=[64, 128, 256, 512], channels=128, num_classes=2),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=2))
