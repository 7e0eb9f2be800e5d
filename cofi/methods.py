"""Fine-tuning methods, registered by name: each decides which parameters train.

A configured run (``methods.<run>`` in the config) names a registered method (default: the
run's own name) plus its hyperparameters. The coarse search's candidates are runs named
``region-<region id>`` that use the reference run's hyperparameters. Adding a method means one
function here and its entry in :data:`METHODS`.
"""

from __future__ import annotations

from cofi.regions import Region, freeze_outside, parse_region_id

SEARCH_PREFIX = "region-"


def prepare_full(model, params: dict) -> list[str]:
    """Full SFT: every parameter trains."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return [name for name, _ in model.named_parameters()]


def prepare_region(model, params: dict) -> list[str]:
    """CoFiTune's coarse level: only the region's projections train (embeddings, norms, head frozen)."""
    region = Region.make(*params["range"], params["modules"])
    return freeze_outside(model, region, params["groups"])


METHODS = {"full": prepare_full, "region": prepare_region}
TRAIN_KEYS = ("lr", "steps", "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "max_grad_norm", "log_every")


def resolve_run(config: dict, run: str) -> tuple[str, dict]:
    """(method, params) of a configured run or of a search candidate ``region-<id>``."""
    if run in config["methods"]:
        entry = dict(config["methods"][run])
        method = entry.pop("method", run)
    elif run.startswith(SEARCH_PREFIX):
        region = parse_region_id(run[len(SEARCH_PREFIX):])
        reference = config["methods"][config["search"]["reference"]]
        entry = {k: reference[k] for k in TRAIN_KEYS if k in reference}
        entry |= {"range": [str(region.lo), str(region.hi)], "modules": list(region.modules)}
        method = "region"
    else:
        raise KeyError(f"unknown run {run!r}: not in methods and not a search candidate")
    if method == "region":
        entry["groups"] = config["module_groups"]
    return method, entry
