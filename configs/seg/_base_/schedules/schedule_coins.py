# Short from-scratch schedule for the embedded coins set on CPU: AdamW, warm-up then cosine decay.
_base_ = ['./iter_based.py']
max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min_ratio=0.01, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=250)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=250, max_keep_ckpts=2, save_best='mIoU'))
