# What every segmentor here shares: mmseg's EncoderDecoder with ImageNet normalisation over a VGBackbone
# (cbam_resnet50 at levels 1-4 unless a config sets backbone.model_name / out_indices). BN (not SyncBN) so that the
# configs also run data-parallel on CPU; on GPUs, norm_cfg=dict(type='SyncBN') is the usual choice.
norm_cfg = dict(type='BN', requires_grad=True)
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
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        norm_eval=False,
        checkpoint=None),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
