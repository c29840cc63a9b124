# RetinaNet, ConViT-S (one stride-16 map) + ViTDet's simple feature pyramid (strides 8-128), 1x schedule with
# AdamW and layer-wise lr decay, COCO 2017.
_base_ = [
    './_base_/models/retinanet_fpn.py', './_base_/datasets/coco_detection.py',
    './_base_/schedules/schedule_1x_layer_decay.py', './_base_/default_runtime.py',
]
model = dict(
    backbone=dict(model_name='gpsa_convit_small', out_indices=(-1,), frozen_stages=-1, norm_eval=False,
                  model_kwargs=dict(drop_path_rate=0.1)),
    neck=dict(_delete_=True, type='SimpleFeaturePyramid', in_channels=432, out_channels=256,
              scale_factors=(2.0, 1.0, 0.5), num_outs=5))
