# Attention U-Net decoder over the four levels of hierarchical ViG-T (vig_gla_h_tiny, strides 4-32), 512x512 crops,
# 160k iterations with AdamW, ADE20K.
_base_ = [
    './_base_/models/attention_unet.py', './_base_/datasets/ade20k.py',
    './_base_/schedules/schedule_160k_adamw.py', './_base_/default_runtime.py',
]
model = dict(
    backbone=dict(model_name='vig_gla_h_tiny', out_indices=(0, 1, 2, 3), model_kwargs=dict(drop_path_rate=0.1)),
    decode_head=dict(in_channels=[96, 192, 384, 768], feature_strides=[4, 8, 16, 32], channels=[96, 192, 384]))
