# 12 epochs, AdamW with layer-wise lr decay (ViTDet-style fine-tuning of plain transformer backbones).
_base_ = ['./schedule_1x.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7),
    clip_grad=dict(max_norm=1.0, norm_type=2))
