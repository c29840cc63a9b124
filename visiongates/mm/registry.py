"""Register one class in both mmdetection's and mmsegmentation's registries (same name in each)."""

from __future__ import annotations

from collections.abc import Callable

from mmdet import registry as det_registry
from mmseg import registry as seg_registry


def _register(kind: str, name: str | None = None) -> Callable[[type], type]:
    def decorator(cls: type) -> type:
        for registry in (getattr(det_registry, kind), getattr(seg_registry, kind)):
            registry.register_module(name=name or cls.__name__, module=cls, force=True)
        return cls

    return decorator


def register_model(name: str | None = None) -> Callable[[type], type]:
    """Register a backbone / neck / head class in mmdet's and mmseg's MODELS."""
    return _register("MODELS", name)


def register_optim_constructor(name: str | None = None) -> Callable[[type], type]:
    """Register an optimizer-wrapper constructor in mmdet's and mmseg's OPTIM_WRAPPER_CONSTRUCTORS."""
    return _register("OPTIM_WRAPPER_CONSTRUCTORS", name)


def register_hook(name: str | None = None) -> Callable[[type], type]:
    """Register a runner hook in mmdet's and mmseg's HOOKS (configs of either scope can name it)."""
    return _register("HOOKS", name)


def register_dataset(name: str | None = None, scope: str = "mmdet") -> Callable[[type], type]:
    """Register a dataset class in one scope's DATASETS ('mmdet' or 'mmseg')."""

    def decorator(cls: type) -> type:
        registry = (det_registry if scope == "mmdet" else seg_registry).DATASETS
        registry.register_module(name=name or cls.__name__, module=cls, force=True)
        return cls

    return decorator
