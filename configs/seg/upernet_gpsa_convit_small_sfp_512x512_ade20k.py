# UPerNet, ConViT-S (one stride-16 map) + ViTDet's simple feature pyramid (strides 4-32), 512x512 crops, 160k
# iterations with AdamW and layer-wise lr decay, ADE20K.
_base_ = [
    './_base_/models/upernet.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/schedule_160k_layer_decay.py', './_base_/default_runtime.py',
]
model = dict(
    backbone=dict(model_name='gpsa_convit_small', out_indices=(-1,), model_kwargs=dict(drop_path_rate=0.1)),
    neck=dict(type='SimpleFeaturePyramid', in_channels=432, out_channels=384, scale_factors=(4.0, 2.0, 1.0, 0.5)),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
