# What every detection config on the embedded coins set shares besides its data: the short from-scratch CPU schedule
# and the detection runtime, logging every 10 iterations and keeping the two best checkpoints by bbox mAP@0.5.
_base_ = ['./schedules/schedule_coins.py', './default_runtime.py']
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=3, max_keep_ckpts=2, save_best='coco/bbox_mAP_50'))
log_processor = dict(window_size=10)
