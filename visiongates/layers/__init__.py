"""Reusable blocks of the visiongates models (gates, GPSA, gated-MLP units...)."""
