"""Fine-tuning methods, registered by name: which parameters train, and what else a run needs.

A configured run (``methods.<run>`` in the config) names a registered method (default: the
run's own name), its method-specific keys and any training keys it overrides; training keys it
leaves out come from the config's ``training`` section. The coarse search's candidates are runs
named ``region-<region id>`` that use the reference run's training keys. Adding a method means
one :class:`Method` here and its entry in :data:`METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cofi.regions import Region, freeze_outside, parse_region_id

SEARCH_PREFIX = "region-"
REQUIRED = object()  # a method key without a default
TRAIN_KEYS = ("lr", "steps", "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "max_grad_norm", "log_every")


def train_everything(model, params: dict) -> list[str]:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return [name for name, _ in model.named_parameters()]


def train_region(model, params: dict) -> list[str]:
    """Only the region's projections train (embeddings, norms, head frozen)."""
    region = Region.make(*params["range"], params["modules"])
    return freeze_outside(model, region, params["groups"])


@dataclass(frozen=True)
class Method:
    """``trainable`` freezes the model outside what trains and returns the trained parameter names.

    ``keys``: the method's own config keys with their defaults (:data:`REQUIRED`: none). ``region_from_search``:
    the region is the coarse search's pick for the task. ``soft_mask``: Fine-SoftMask is applied
    with the unit importance estimated for the task.
    """

    trainable: Callable
    description: str
    keys: tuple[tuple[str, object], ...] = ()
    region_from_search: bool = False
    soft_mask: bool = False


SOFT_MASK_KEYS = (("softmask", "grad"), ("softmask_apply", None))

METHODS = {
    "full": Method(train_everything, "Full SFT: every parameter trains"),
    "region": Method(train_region, "CoFiTune's coarse level: a layer range × module groups trains",
                     keys=(("range", REQUIRED), ("modules", REQUIRED))),
    "cofitune": Method(train_region, "CoFiTune: the search's region + Fine-SoftMask",
                       keys=SOFT_MASK_KEYS, region_from_search=True, soft_mask=True),
    "vsoftmask": Method(train_everything, "V-SoftMask: everything trains, soft mask on all layers and modules",
                        keys=SOFT_MASK_KEYS, soft_mask=True),
}


def method_of(config: dict, run: str) -> str:
    if run in config["methods"]:
        return config["methods"][run].get("method", run)
    if run.startswith(SEARCH_PREFIX):
        return "region"
    raise KeyError(f"unknown run {run!r}: not in methods and not a search candidate")


def resolve_run(config: dict, run: str) -> tuple[str, dict]:
    """(method, params) of a configured run or of a search candidate ``region-<id>``.

    Params hold every training key (the run's own, else the ``training`` section's) and the
    method's keys (the run's own, else the method's defaults).
    """
    method = method_of(config, run)
    if run in config["methods"]:
        entry = {k: v for k, v in config["methods"][run].items() if k != "method"}
        params = {k: entry.get(k, config["training"][k]) for k in TRAIN_KEYS}
        params |= {k: entry.get(k, default) for k, default in METHODS[method].keys}
    else:
        region = parse_region_id(run[len(SEARCH_PREFIX):])
        params = resolve_run(config, config["search"]["reference"])[1]
        params = {k: params[k] for k in TRAIN_KEYS} | region.to_dict()
    if METHODS[method].trainable is train_region:
        params["groups"] = config["module_groups"]
    return method, params
