"""What visiongates adds to timm's registry, and the facts of each model (the one source for README tables)."""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass
from typing import Any

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg

from visiongates.errors import UnknownModelError

# The pretrained cfg fields a zoo model has unless its `_cfg` says otherwise: an ImageNet-1k classifier at 224 px.
IMAGENET_CFG = {
    "num_classes": 1000,
    "input_size": (3, 224, 224),
    "pool_size": None,
    "crop_pct": 0.875,
    "interpolation": "bicubic",
    "mean": IMAGENET_DEFAULT_MEAN,
    "std": IMAGENET_DEFAULT_STD,
}


def pretrained_cfg(family: dict[str, Any], overrides: dict[str, Any], paper: tuple[str, ...] = ()) -> dict[str, Any]:
    """A variant's timm pretrained cfg: `IMAGENET_CFG`, updated by its family's fields, then by the variant's own
    `overrides`; `paper` (paper_ids, paper_name[, origin_url]) cites the family's paper."""
    cited = dict(zip(("paper_ids", "paper_name", "origin_url"), paper))
    return {**IMAGENET_CFG, **cited, **family, **overrides}


def build_model(cls: type, variant: str, pretrained: bool, filter_fn: Any, out_indices: Any, /, **kwargs: Any) -> Any:
    """timm's `build_model_with_cfg` with the family's checkpoint filter and, for `features_only`, the getter feature
    wrapper over `out_indices` (the family's default; an `out_indices` in kwargs, the caller's, overrides it)."""
    features = dict(out_indices=kwargs.pop("out_indices", out_indices), feature_cls="getter")
    return build_model_with_cfg(
        cls, variant, pretrained, feature_cfg=features, pretrained_filter_fn=filter_fn, **kwargs
    )


@dataclass(frozen=True)
class ModelFacts:
    """Published (or, where none is published, measured) size of one variant: each model file keeps a
    `model_facts = {name: ModelFacts(...)}` table beside its `default_cfgs` (timm's cfgs take no extra fields).

    params_m: parameters in millions; params_tol: relative tolerance the conformance suite allows;
    gmacs: multiply-accumulates in billions at the default input size, always counted here by
    `visiongates.flops.count_model_gmacs` (None only where compute depends on the image); source: where the figures
    come from; published: the publisher's own compute figure where it differs from `gmacs`, and why.
    """

    params_m: float
    source: str
    gmacs: float | None = None
    params_tol: float = 0.005
    task: str = "classification"
    published: str = ""


# timm families that visiongates lists in its zoo without redefining them.
TIMM_FAMILIES = {"seresnet": ["seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152"]}


def family_modules() -> list[str]:
    """Short names of the visiongates model modules (timm records a model's module by its last dotted part)."""
    package = __name__.rsplit(".", 1)[0]
    return sorted(
        name.rsplit(".", 1)[1]
        for name, module in list(sys.modules.items())
        if name.startswith(package + ".") and hasattr(module, "default_cfgs") and not name.endswith("._registry")
    )


def list_models(pattern: str = "") -> list[str]:
    """Names of every model registered by visiongates (optionally filtered by a timm wildcard pattern)."""
    names: set[str] = set()
    for module in family_modules():
        names.update(timm.list_models(pattern or "*", module=module))
    return sorted(names)


def model_facts(name: str) -> ModelFacts | None:
    """The `ModelFacts` its model file records for `name` (None where the file records none)."""
    module = sys.modules[timm.models.model_entrypoint(name).__module__]
    return getattr(module, "model_facts", {}).get(name)


def model_table_rows() -> list[dict[str, Any]]:
    """One row per zoo model (ours, then the timm families we list), for the README's generated table."""
    rows = []
    for name in list_models():
        facts = model_facts(name)
        rows.append({"name": name, "family": "visiongates", **(asdict(facts) if facts else {})})
    for family, names in TIMM_FAMILIES.items():
        rows += [{"name": name, "family": f"timm ({family})"} for name in names]
    return rows


def _weights_link(cfg: Any) -> str:
    """Where a pretrained cfg's weights come from, as a URL for the README."""
    if cfg.hf_hub_id:
        repo = f"https://huggingface.co/{cfg.hf_hub_id}"
        return f"{repo}/blob/main/{cfg.hf_hub_filename}" if cfg.hf_hub_filename else repo
    if cfg.url:
        return cfg.url[0] if isinstance(cfg.url, (list, tuple)) else cfg.url
    return next((word for note in cfg.notes or () for word in note.split() if word.startswith("https://")), "")


def weights_cell(name: str) -> str:
    """The README's weights column for one model: each pretrained tag linked to its source, with its license;
    'manual download' where the publisher gives no direct URL; 'none published' where no weights exist."""
    entries = []
    for cfg in timm.models.get_arch_pretrained_cfgs(name).values():
        link = _weights_link(cfg)
        if not cfg.tag or not link:
            continue
        entry = f"[`{cfg.tag}`]({link}) ({cfg.license or 'license not stated'})"
        if not cfg.has_weights:
            entry += ", manual download"
        elif cfg.notes:
            entry += f"; {cfg.notes[0]}"
        entries.append(entry)
    return "; ".join(entries) or "none published"


TABLE_START, TABLE_END = "<!-- model-table:start -->", "<!-- model-table:end -->"


def model_table_markdown() -> str:
    """The README's zoo table: every model, its measured parameter count, the recorded figures with sources (GMACs
    as counted by `visiongates.flops`, beside the publisher's figure where it differs), and its pretrained weights
    (from the model file's `default_cfgs`)."""
    lines = [
        "| model | family | task | params (M), measured | params (M), recorded | GMACs, counted | published compute "
        "| source | weights (tag, license) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in model_table_rows():
        model = timm.create_model(row["name"], device="meta")
        measured = sum(p.numel() for p in model.parameters()) / 1e6
        recorded = f"{row['params_m']:.2f}" if row.get("params_m") else ""
        gmacs = f"{row['gmacs']:.2f}" if row.get("gmacs") else ""
        source = row.get("source", "timm's own model (not redefined here)")
        lines.append(
            f"| `{row['name']}` | {row['family']} | {row.get('task', 'classification')} | {measured:.2f} "
            f"| {recorded} | {gmacs} | {row.get('published', '')} | {source} | {weights_cell(row['name'])} |"
        )
    return "\n".join(lines)


def replace_model_table(readme: str) -> str:
    """`readme` with the text between the model-table markers regenerated."""
    start, end = readme.index(TABLE_START) + len(TABLE_START), readme.index(TABLE_END)
    return readme[:start] + "\n" + model_table_markdown() + "\n" + readme[end:]


def check_model_name(name: str) -> str:
    """Return `name` if timm knows it (visiongates models included: importing this package registers them);
    otherwise raise with the closest names."""
    if timm.is_model(name):
        return name
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See `timm.list_models()` for the known names."
    raise UnknownModelError(f"unknown model '{name}'.{hint}")
