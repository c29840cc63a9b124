# 160k iterations, AdamW with layer-wise lr decay (plain transformer backbones), warm-up then polynomial decay.
_base_ = ['./schedule_160k_adamw.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
