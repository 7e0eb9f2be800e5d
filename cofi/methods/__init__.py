"""Fine-tuning methods, registered by name, and how a configured run resolves to (method, params).

A configured run (``methods.<run>`` in the config) names a registered method (default: the run's
own name), the method's own keys, the training keys it overrides (the rest come from the
``training`` section) and the options every training method takes: ``sam`` (sharpness-aware
minimisation, :mod:`cofi.sam`) and ``equal_compute`` (twice the steps: the compute of a SAM run).
A method key the method lists in ``sweep``, and the learning rate and SAM's ``rho`` of any training
method, may be a list: one run per value, named ``<run>_<key><value>`` (the tables add a ``<run>_tuned`` row
that picks the value on the validation split). The coarse search's candidates are runs named
``region-<region id>`` with the reference run's training keys.

Adding a method: one module here (a :class:`~cofi.methods.base.Method` subclass) and one entry
in :data:`METHODS`.
"""

from __future__ import annotations

import itertools

from cofi.methods.base import CheckContext, Inputs, Method, MethodError, Setup
from cofi.methods.cofitune import CoFiTune
from cofi.methods.full import Full
from cofi.methods.lora import LoRA
from cofi.methods.penalty import L1, L2
from cofi.methods.region import RegionMethod
from cofi.methods.replay import Replay
from cofi.methods.vsoftmask import VSoftMask
from cofi.methods.wiseft import WiseFT
from cofi.regions import parse_region_id

METHODS: dict[str, Method] = {m.name: m for m in (
    Full(), RegionMethod(), CoFiTune(), VSoftMask(), LoRA(), L1(), L2(), WiseFT(), Replay(),
)}

SEARCH_PREFIX = "region-"
# Table rows the workflow makes itself; no configured run may take their names.
BASE_ROW = "base"  # the base model, scored once
COARSE_ROW = "cofitune_coarse"  # the coarse search's pick, trained at every seed
RESERVED_ROWS = {BASE_ROW: "the base model's row", COARSE_ROW: "the coarse search's pick"}


def tuned_row(sweep: str) -> str:
    """The row of a sweep's value chosen on validation."""
    return f"{sweep}_tuned"

TRAIN_KEYS = ("lr", "steps", "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "max_grad_norm", "log_every")
OPTION_KEYS = ("sam", "equal_compute")  # any training method; validated by the config schema
RUN_KEYS = ("method", *TRAIN_KEYS, *OPTION_KEYS)

__all__ = ["BASE_ROW", "COARSE_ROW", "METHODS", "SEARCH_PREFIX", "TRAIN_KEYS", "RUN_KEYS", "CheckContext", "Inputs",
           "Method", "MethodError", "Setup", "configured_runs", "method_of", "resolve_run", "sweep_groups", "tuned_row"]


def _value_text(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def configured_runs(config: dict) -> dict[str, dict]:
    """Every configured run with sweep lists expanded, in config order: {run name: entry}.

    Each entry has ``method`` set; a variant also has ``sweep_of`` (the run it came from).
    """
    runs = {}

    def add(name: str, entry: dict) -> None:
        if name in runs:
            first, second = (runs[name].get("sweep_of", name), entry.get("sweep_of", name))
            raise MethodError(f"config key methods.{name}: the name is also a variant of run "
                              f"{second if second != name else first!r}; rename one")
        runs[name] = entry

    sweeps = {}
    for run, entry in config["methods"].items():
        if run in RESERVED_ROWS:
            raise MethodError(f"config key methods.{run}: the name is reserved ({RESERVED_ROWS[run]} in the tables); "
                              "rename the run")
        name = entry.get("method", run)
        method = METHODS.get(name)
        swept = [path for path in _sweepable(method) if isinstance(_get(entry, path), list)]
        if not swept:
            add(run, {**entry, "method": name})
            continue
        sweeps[tuned_row(run)] = run
        for path in swept:
            values = _get(entry, path)
            if repeated := [v for i, v in enumerate(values) if v in values[:i]]:
                raise MethodError(f"config key methods.{run}.{'.'.join(path)}: the value {_value_text(repeated[0])} is "
                                  "listed twice (each value is one run)")
        for values in itertools.product(*(_get(entry, path) for path in swept)):
            variant = {**entry, "method": name, "sweep_of": run}
            for path, value in zip(swept, values):
                variant = _set(variant, path, value)
            suffix = "_".join(f"{path[-1]}{_value_text(v)}" for path, v in zip(swept, values))
            variant["sweep_label"] = ", ".join(f"{path[-1]}={_value_text(v)}" for path, v in zip(swept, values))
            add(f"{run}_{suffix}", variant)
    if clash := next((name for name in runs if name in sweeps), None):
        raise MethodError(f"config key methods.{clash}: the name is the tuned row of the sweep {sweeps[clash]!r} "
                          "(the value chosen on validation); rename the run")
    return runs


def _sweepable(method: Method | None) -> list[tuple[str, ...]]:
    """Key paths whose list value is a sweep: the method's own, and lr and SAM's rho of training methods."""
    if method is None:
        return []
    return [(k,) for k in method.sweep] + ([("lr",), ("sam", "rho")] if method.trains else [])


def _get(entry: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return entry


def _set(entry: dict, path: tuple[str, ...], value) -> dict:
    """A copy of ``entry`` with the value at ``path`` replaced (nested dicts copied, not shared)."""
    if len(path) == 1:
        return {**entry, path[0]: value}
    return {**entry, path[0]: _set(entry[path[0]], path[1:], value)}


def sweep_groups(config: dict) -> dict[str, dict[str, str]]:
    """{swept run: {variant run: "key=value"}}, for the tables' tuned rows."""
    groups: dict[str, dict[str, str]] = {}
    for name, entry in configured_runs(config).items():
        if "sweep_of" in entry:
            groups.setdefault(entry["sweep_of"], {})[name] = entry["sweep_label"]
    return groups


def method_of(config: dict, run: str) -> str:
    runs = configured_runs(config)
    if run in runs:
        return runs[run]["method"]
    if run.startswith(SEARCH_PREFIX):
        return "region"
    raise KeyError(f"unknown run {run!r}: not in methods and not a search candidate")


def resolve_run(config: dict, run: str) -> tuple[str, dict]:
    """(method, params) of a configured run (or sweep variant) or of a search candidate ``region-<id>``.

    Params hold every training key (the run's own, else the ``training`` section's), ``sam`` and
    ``equal_compute`` where the run sets them (``steps`` already doubled for the latter), and the
    method's keys (the run's own, else the method's defaults); region methods also get the
    config's module groups.
    """
    runs = configured_runs(config)
    if run in runs:
        entry = runs[run]
        name = entry["method"]
        params = {k: entry.get(k, config["training"][k]) for k in TRAIN_KEYS}  # sweeps: already one value
        # Options only when set, so adding them to cofi left the params (and finished runs) of others unchanged.
        if entry.get("sam"):
            params["sam"] = entry["sam"]
        if entry.get("equal_compute"):
            params |= {"equal_compute": True, "steps": 2 * params["steps"]}  # a SAM step costs two passes
        params |= {k: entry.get(k, spec["default"]) for k, spec in METHODS[name].keys.items()}
    elif run.startswith(SEARCH_PREFIX):
        name = "region"
        region = parse_region_id(run[len(SEARCH_PREFIX):])
        reference = resolve_run(config, config["search"]["reference"])[1]
        params = {k: reference[k] for k in (*TRAIN_KEYS, *OPTION_KEYS) if k in reference} | region.to_dict()
    else:
        raise KeyError(f"unknown run {run!r}: not in methods and not a search candidate")
    if METHODS[name].uses_groups:
        params["groups"] = config["module_groups"]
    return name, params
