# 12 epochs, AdamW for transformer-style backbones (no weight decay on norms, biases and position embeddings).
_base_ = ['./schedule_1x.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
