# Attention U-Net decoder (Oktay et al., MIDL 2018; visiongates.mm.AttentionUNetHead) over every level of a
# VGBackbone: attention-gated skips, deep supervision with auxiliary losses. Set backbone.model_name and the
# head's in_channels / feature_strides to the backbone's out_channels / strides.
_base_ = ['./encoder_decoder.py']
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3, 4)),
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
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
