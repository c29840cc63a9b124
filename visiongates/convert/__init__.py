"""Converters from official checkpoints of other frameworks to visiongates state dicts (no heavy imports)."""
