# What every segmentation config on the embedded coins set starts from: the set (128x128 crops, background / coin),
# its short from-scratch CPU schedule and the segmentation runtime. A config adds a model base and its channels.
_base_ = ['./datasets/coins_semantic.py', './schedules/schedule_coins.py', './default_runtime.py']
