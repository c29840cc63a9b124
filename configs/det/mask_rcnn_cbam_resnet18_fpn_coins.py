# Mask R-CNN, CBAM-ResNet-18 + FPN, trained from scratch on the embedded coins set (128x128, one class) on CPU.
_base_ = ['./_base_/models/mask_rcnn_fpn.py', './_base_/datasets/coins_instance.py', './_base_/coins_runtime.py']
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(model_name='cbam_resnet18', frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=128, feat_channels=128, anchor_generator=dict(scales=[6])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(num_classes=1, in_channels=128, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(num_classes=1, in_channels=128, num_convs=2, conv_out_channels=64, norm_cfg=norm_cfg)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))
