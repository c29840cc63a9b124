# Runtime shared by every detection config: mmdet scope, hooks, visualizer and logging over the common runtime.
_base_ = ['../../_base_/default_runtime.py']
default_scope = 'mmdet'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

visualizer = dict(type='DetLocalVisualizer', vis_backends={{_base_.vis_backends}}, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
