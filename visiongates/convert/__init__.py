"""Conversion of a released checkpoint to a visiongates state dict, with a report of what went where (behind
tools/convert_checkpoint.py). It sits above `models`: each family's layout map lives with the family (its
`checkpoint_filter_fn`; MAXIM's Flax trees in `visiongates/models/maxim_flax.py`)."""
