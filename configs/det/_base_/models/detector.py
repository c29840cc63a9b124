# What every detector here shares: mmdet's data preprocessor with ImageNet normalisation over a VGBackbone
# (cbam_resnet50 at levels 1-4, stem and first stage frozen, unless a config sets backbone.model_name / out_indices).
model = dict(
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='VGBackbone',
        model_name='cbam_resnet50',
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
        checkpoint=None))
