"""A pytest plugin that runs timm's own tests/test_models.py (from the timm sdist) on the visiongates zoo only.

    python -m pytest -p timm_suite <sdist>/tests/test_models.py     (tests/ on PYTHONPATH)

timm's test file parametrizes each test with `timm.list_models(...)` when it is imported; this plugin registers the
zoo first and narrows every such call to zoo names (env `VISIONGATES_TIMM_MODELS`, comma-separated timm wildcards,
narrows further). It changes no test body. What it adds, each with its reason:

- NON_STD: our token-sequence models join timm's `NON_STD_FILTERS` class, exactly as timm's own `convit_*`, `deit*`
  and `vit_*` do: `forward_features` returns (B, tokens, C) with a class token, which has no (H, W) `pool_size`.
- NOT_APPLICABLE: MAXIM is image-to-image (no classifier, no pooled features): the classifier-contract tests do not
  apply to it; the forward, TorchScript and FX forward tests do and run.
- EXCLUDED: MSViT's direct TorchScript test (see the reason below).
- The pretrained-download tests are deselected (nothing is downloaded here).
"""

from __future__ import annotations

import fnmatch
import os

import timm

import visiongates
from visiongates.models import TIMM_FAMILIES

# timm's own models listed in the zoo (seresnet*) are covered by timm's CI; run only the models visiongates defines.
_TIMM_OWN = {name for names in TIMM_FAMILIES.values() for name in names}
ZOO = [name for name in visiongates.list_models() if name not in _TIMM_OWN]

# ConViT and MSViT prepend a class token: the same output layout as timm's convit_* / deit* (both NON_STD in timm).
NON_STD = ["gpsa_convit_*", "msvit_*"]

# Tests of timm's suite that cannot apply to a model by its nature (model pattern -> test names, reason).
NOT_APPLICABLE = {
    "maxim_*": (
        {
            "test_model_backward",  # builds num_classes=42 and checks a 42-wide logit
            "test_model_default_cfgs",  # pool_size / num_features / reset_classifier of a classifier head
            "test_model_default_cfgs_non_std",
            "test_model_forward_features",  # features_only: MAXIM has no encoder feature pyramid to expose
            "test_model_backward_fx",  # num_classes=42 again
        },
        "image-to-image restoration model: no classifier head, pooled features or feature pyramid",
    ),
}
# Tests excluded the way timm's suite excludes its own models (as its EXCLUDE_JIT_FILTERS does for naflexvit, hiera
# and gemma4_vit), each with its reason; the README lists them.
EXCLUDED = {
    "msvit_*": (
        {"test_model_forward_torchscript"},
        "TorchScript: the gate's per-region decision, the dropped-token gather and the gate state kept for the "
        "batch-shaping loss are data-dependent Python (NamedTuples, nonzero, attribute state) outside TorchScript's "
        "subset; the FX graph of its static masked path does script (test_model_forward_fx_torchscript runs)",
    ),
}
PRETRAINED_TESTS = {"test_model_inference", "test_model_load_pretrained"}

_original_list_models = timm.list_models


def _wanted() -> list[str]:
    patterns = [p for p in os.environ.get("VISIONGATES_TIMM_MODELS", "").split(",") if p]
    return [n for n in ZOO if not patterns or any(fnmatch.fnmatch(n, p) for p in patterns)]


def zoo_list_models(filter="", module="", pretrained=False, exclude_filters="", **kwargs):
    """timm.list_models restricted to the zoo; a call naming timm's NON_STD class (it lists 'convit_*') also
    selects (filter) or drops (exclude_filters) our NON_STD models."""
    if not isinstance(filter, str) and "convit_*" in filter:
        filter = [*filter, *NON_STD]
    if not isinstance(exclude_filters, str) and "convit_*" in exclude_filters:
        exclude_filters = [*exclude_filters, *NON_STD]
    names = _original_list_models(
        filter, module=module, pretrained=pretrained, exclude_filters=exclude_filters, **kwargs
    )
    keep = set(_wanted())
    return [n for n in names if n.split(".")[0] in keep]


def _zoo_list_pretrained(filter="", exclude_filters=""):
    return []  # nothing is downloaded: the pretrained tests are deselected


timm.list_models = zoo_list_models
timm.list_pretrained = _zoo_list_pretrained
timm.models.list_models = zoo_list_models
timm.models.list_pretrained = _zoo_list_pretrained


def not_applicable(model_name: str, test_name: str) -> str | None:
    """The reason timm's `test_name` does not apply to (or is excluded for) `model_name`, or None where it runs."""
    for pattern, (tests, reason) in (*NOT_APPLICABLE.items(), *EXCLUDED.items()):
        if fnmatch.fnmatch(model_name, pattern) and test_name in tests:
            return reason
    return None


def pytest_configure(config):
    for mark in (
        "base",
        "cfg",
        "cfg_nonstd",
        "forward",
        "backward",
        "torchscript",
        "features",
        "fxforward",
        "fxbackward",
    ):
        config.addinivalue_line("markers", f"{mark}: a marker of timm's test suite (its CI splits runs by them)")


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        test_name = item.originalname or item.name
        model_name = getattr(item, "callspec", None) and item.callspec.params.get("model_name")
        if test_name in PRETRAINED_TESTS:
            dropped.append(item)
        elif isinstance(model_name, str) and (model_name not in ZOO or not_applicable(model_name, test_name)):
            dropped.append(item)  # a hard-coded timm model name (e.g. 'convit_tiny'), or a test that cannot apply
        elif not isinstance(model_name, str):
            dropped.append(item)  # tests of timm internals that take no model name
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
