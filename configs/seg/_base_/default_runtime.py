# Runtime shared by every segmentation config: mmseg scope, visualizer, logging and test-time augmentation over the
# common runtime (hooks are in the schedules).
_base_ = ['../../_base_/default_runtime.py']
default_scope = 'mmseg'
env_cfg = dict(cudnn_benchmark=True)
visualizer = dict(type='SegLocalVisualizer', vis_backends={{_base_.vis_backends}}, name='visualizer')
log_processor = dict(by_epoch=False)
tta_model = dict(type='SegTTAModel')
