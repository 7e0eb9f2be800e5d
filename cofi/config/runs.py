"""A configured experiment's runs (pure): each :class:`Run` as the finetune job gets it, the config's run entries
with their sweep lists expanded, and :class:`Runs`, the collection with its sweeps and shared files."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property

from cofi.config import settings
from cofi.config.names import RESERVED_ROWS, tuned_row
from cofi.config.settings import TrainSettings
from cofi.errors import InputError

RUN_OPTIONS = ("sam", "equal_compute")  # what every training method takes besides the training keys


class RunsError(InputError):
    """Run entries that do not fit together; the message names the config key."""


def value_text(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Run:
    """One configured run (or sweep variant, or search candidate): a method, its own params, the
    training settings and options. ``spec()`` is what the finetune job gets."""

    name: str
    method: str
    params: dict = field(default_factory=dict)  # the method's own keys, defaults filled
    train: TrainSettings = TrainSettings()
    sam_rho: float | None = None  # sharpness-aware minimisation with this radius
    equal_compute: bool = False  # twice the steps (already in train.steps): SAM's compute for a plain optimizer
    sweep: str | None = None  # the configured run a variant comes from
    sweep_label: str = ""  # "lr=0.001"
    own_lr: bool = False  # its entry sets lr (a run that trains the search's pick otherwise takes the pick's)

    def spec(self, **params) -> dict:
        """JSON-ready: everything the fine-tuning job needs to know of the run (``params`` adds to its
        own, e.g. the search's pick for CoFiTune)."""
        return {"name": self.name, "method": self.method, "params": {**self.params, **params},
                "train": self.train.spec(), "sam_rho": self.sam_rho, "equal_compute": self.equal_compute}

    @classmethod
    def from_spec(cls, spec: dict) -> "Run":
        return cls(name=spec["name"], method=spec["method"], params=dict(spec["params"]),
                   train=settings.from_dict(TrainSettings, spec["train"], "run train settings"),
                   sam_rho=spec.get("sam_rho"), equal_compute=bool(spec.get("equal_compute")))


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


def _sweepable(method) -> list[tuple[str, ...]]:
    """Key paths whose list value is a sweep: the method's own, and lr and SAM's rho of training methods."""
    if method is None:
        return []
    own = [(key,) for key in method.sweep]
    return own + ([(key,) for key in settings.sweepable(TrainSettings)] + [("sam", "rho")] if method.trains else [])


def expand_runs(entries: dict[str, dict]) -> dict[str, dict]:
    """Every configured run with sweep lists expanded, in config order: {run name: entry}. Each entry
    has ``method`` set; a variant also ``sweep_of`` (the run it came from) and ``sweep_label``."""
    from cofi.methods import METHODS

    runs: dict[str, dict] = {}
    tuned: dict[str, str] = {}

    def add(name: str, entry: dict) -> None:
        if name in runs:
            first, second = (runs[name].get("sweep_of", name), entry.get("sweep_of", name))
            raise RunsError(f"config key runs.{name}: the name is also a variant of run "
                                  f"{second if second != name else first!r}; rename one")
        runs[name] = entry

    for run, entry in entries.items():
        if run in RESERVED_ROWS:
            raise RunsError(f"config key runs.{run}: the name is reserved ({RESERVED_ROWS[run]} in the tables); "
                                  "rename the run")
        name = entry.get("method", run)
        swept = [path for path in _sweepable(METHODS.get(name)) if isinstance(_get(entry, path), list)]
        if not swept:
            add(run, {**entry, "method": name})
            continue
        tuned[tuned_row(run)] = run
        for path in swept:
            values = _get(entry, path)
            if repeated := [v for i, v in enumerate(values) if v in values[:i]]:
                raise RunsError(f"config key runs.{run}.{'.'.join(path)}: the value {value_text(repeated[0])} "
                                      "is listed twice (each value is one run)")
        for values in itertools.product(*(_get(entry, path) for path in swept)):
            variant = {**entry, "method": name, "sweep_of": run}
            for path, value in zip(swept, values):
                variant = _set(variant, path, value)
            suffix = "_".join(f"{path[-1]}{value_text(v)}" for path, v in zip(swept, values))
            variant["sweep_label"] = ", ".join(f"{path[-1]}={value_text(v)}" for path, v in zip(swept, values))
            add(f"{run}_{suffix}", variant)
    if clash := next((name for name in runs if name in tuned), None):
        raise RunsError(f"config key runs.{clash}: the name is the tuned row of the sweep {tuned[clash]!r} "
                              "(the value chosen on validation); rename the run")
    return runs


def make_run(name: str, entry: dict, training: dict, module_groups: dict) -> Run:
    """A :class:`Run` from an expanded entry: training keys from the entry, else the training section;
    the method's keys from the entry, else its defaults; equal compute doubles the steps."""
    from cofi.methods import METHODS

    method = METHODS[entry["method"]]
    keys = {key: entry.get(key, training[key]) for key in training}
    if entry.get("equal_compute"):
        keys["steps"] = 2 * keys["steps"]  # a SAM step costs two passes
    params = {key: entry.get(key, spec["default"]) for key, spec in method.keys.items()}
    if method.uses_groups:
        params["groups"] = module_groups
    return Run(name=name, method=entry["method"], params=params, train=settings.from_dict(TrainSettings, keys),
               sam_rho=(entry.get("sam") or {}).get("rho") or None,  # rho 0: no SAM
               equal_compute=bool(entry.get("equal_compute")),
               sweep=entry.get("sweep_of"), sweep_label=entry.get("sweep_label", ""), own_lr="lr" in entry)


class Runs(dict):
    """{run name: :class:`Run`}: every configured run and sweep variant, in config order, with what the tables
    and the rules ask of them together."""

    @cached_property
    def sweeps(self) -> dict[str, dict[str, str]]:
        """{swept run: {variant run: "key=value"}}, for the tables' tuned rows."""
        groups: dict[str, dict[str, str]] = {}
        for run in self.values():
            if run.sweep is not None:
                groups.setdefault(run.sweep, {})[run.name] = run.sweep_label
        return groups

    @cached_property
    def stored_as(self) -> dict[str, str]:
        """{run: the run whose files it uses}, for runs that train exactly what an earlier run trains (the
        same method, params, training settings and options; e.g. a sweep value equal to the reference's
        lr): they share that run's model and scores instead of training and scoring the same thing twice.
        Runs whose training is their own are left out."""
        first: dict[str, str] = {}
        shared = {}
        for name, run in self.items():
            identity = json.dumps({k: v for k, v in run.spec().items() if k != "name"}, sort_keys=True)
            shared[name] = first.setdefault(identity, name)
        return {name: storage for name, storage in shared.items() if storage != name}

    def storage(self, name: str) -> str:
        """The run whose files ``name``'s are (itself, unless :attr:`stored_as` names another)."""
        return self.stored_as.get(name, name)
