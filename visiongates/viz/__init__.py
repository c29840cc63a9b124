"""Pictures of what the models learn (matplotlib is imported lazily, by the plotting functions only)."""
