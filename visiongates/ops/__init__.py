"""Custom operators of visiongates, one folder per op (naive oracle, PyTorch backend, optional CUDA backend)."""
