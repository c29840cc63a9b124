# RetinaNet, CBAM-ResNet-18 + FPN, trained from scratch on the embedded coins set (128x128, one class) on CPU.
_base_ = ['./_base_/models/retinanet_fpn.py', './_base_/datasets/coins_detection.py', './_base_/coins_runtime.py']
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(model_name='cbam_resnet18', frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128, norm_cfg=norm_cfg),
    bbox_head=dict(
        num_classes=1, in_channels=128, feat_channels=128, stacked_convs=2, norm_cfg=norm_cfg,
        anchor_generator=dict(octave_base_scale=3)))
