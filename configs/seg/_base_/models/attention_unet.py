# Attention U-Net decoder (Oktay et al., MIDL 2018; visiongates.mm.AttentionUNetHead) over every level of a
# VGBackbone: attention-gated skips, deep supervision with auxiliary losses. Set backbone.model_name and the
# head's in_channels / feature_strides to the backbone's out_channels / strides.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='VGBackbone',
        model_name='cbam_resnet50',
        out_indices=(0, 1, 2, 3, 4),
        frozen_stages=-1,
        norm_eval=False,
        checkpoint=None),
    decode_head=dict(
        type='AttentionUNetHead',
        in_channels=[64, 256, 512, 1024, 2048],
        feature_strides=[2, 4, 8, 16, 32],
        channels=[64, 128, 256, 512],
        gate='grid',
        deep_supervision=True,
        aux_weight=0.4,
        num_classes=150,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
