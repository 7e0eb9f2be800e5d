"""The experiment, typed (pure: no torch, no Snakemake): built once from the validated config.

The Snakefile and every job read the same objects: an :class:`Experiment` holds the tasks and
versatility suites with their files, every :class:`Run` (sweeps expanded, options resolved), the
search's settings and where every output goes (:class:`Layout`). Nothing here reads a file; the
checks of meaning that need files or the model are :func:`cofi.config.checks.check_config`'s.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property

from cofi.config import settings
from cofi.data.embedded import suites_module
from cofi.errors import InputError
from cofi.search.regions import parse_region_id
from cofi.search.policy import Policy
from cofi.config.layout import Layout
from cofi.config.names import BASE_ROW, COARSE_ROW, RESERVED_ROWS, SEARCH_PREFIX, tuned_row
from cofi.config.settings import ClaimRows, ClusterSettings, ComputeSettings, ModelSettings, PromptSettings, TrainSettings

RUN_OPTIONS = ("sam", "equal_compute")  # what every training method takes besides the training keys
SPLITS = ("test", "val")


class ExperimentError(InputError):
    """A config whose runs or references do not fit together; the message names the config key."""


def value_text(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Suite:
    """A speciality task or a versatility suite: its type, metric and data files (null: embedded)."""

    name: str
    type: str
    metric: str
    paths: dict  # split -> the configured path or None (embedded)
    layout: Layout

    @property
    def embedded(self) -> bool:
        return any(self.paths.get(split) is None for split in ("train", "test") if split in self.paths)

    def file(self, split: str) -> str:
        """The file of ``split``; a user suite without validation data is selected on its test file."""
        if self.paths.get(split) is not None:
            return self.paths[split]
        if split == "val" and self.paths.get("test") is not None:
            return self.paths["test"]
        return self.layout.data_file(f"{self.name}_{split}")

    def selects_on_test(self) -> bool:
        return self.file("val") == self.file("test")

    def spec(self, split: str) -> dict:
        """What an evaluation job needs of it."""
        return {"path": self.file(split), "type": self.type, "metric": self.metric}


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
                "train": settings.to_dict(self.train), "sam_rho": self.sam_rho, "equal_compute": self.equal_compute}

    @classmethod
    def from_spec(cls, spec: dict) -> "Run":
        return cls(name=spec["name"], method=spec["method"], params=dict(spec["params"]),
                   train=settings.from_dict(TrainSettings, spec["train"], "run train settings"),
                   sam_rho=spec.get("sam_rho"), equal_compute=bool(spec.get("equal_compute")))


@dataclass(frozen=True)
class Search:
    """The coarse search's settings."""

    enabled: bool
    policy: Policy
    reference: str  # the run whose scores are the root and set the Spec floor; candidates train like it
    seed: int  # the seed the candidates are trained and selected at
    lrs: tuple[float, ...] = ()  # each candidate trains at each; a candidate scores as its best (search.lr)
    reference_lr: float | None = None  # the reference's lr (None where no run is called so: check_config says so)

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def name(self) -> str:
        """Where its files go: the mode, and the lr list where it is not the reference's lr alone (so a
        search over region x lr sits beside the search over regions, and both reuse the same runs)."""
        if self.lrs in ((), (self.reference_lr,)):
            return self.mode
        return f"{self.mode}_lr" + "-".join(value_text(lr) for lr in self.lrs)


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
            raise ExperimentError(f"config key runs.{name}: the name is also a variant of run "
                                  f"{second if second != name else first!r}; rename one")
        runs[name] = entry

    for run, entry in entries.items():
        if run in RESERVED_ROWS:
            raise ExperimentError(f"config key runs.{run}: the name is reserved ({RESERVED_ROWS[run]} in the tables); "
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
                raise ExperimentError(f"config key runs.{run}.{'.'.join(path)}: the value {value_text(repeated[0])} "
                                      "is listed twice (each value is one run)")
        for values in itertools.product(*(_get(entry, path) for path in swept)):
            variant = {**entry, "method": name, "sweep_of": run}
            for path, value in zip(swept, values):
                variant = _set(variant, path, value)
            suffix = "_".join(f"{path[-1]}{value_text(v)}" for path, v in zip(swept, values))
            variant["sweep_label"] = ", ".join(f"{path[-1]}={value_text(v)}" for path, v in zip(swept, values))
            add(f"{run}_{suffix}", variant)
    if clash := next((name for name in runs if name in tuned), None):
        raise ExperimentError(f"config key runs.{clash}: the name is the tuned row of the sweep {tuned[clash]!r} "
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


class Experiment:
    """One experiment, from a config that :func:`cofi.config.checks.validate_schema` has filled and checked."""

    def __init__(self, config: dict, model_depth: int | None = None):
        """``model_depth``: the decoder layers of a user's model, read from it by the start-up check (None: unknown;
        the embedded model's come from the config)."""
        self.config = config
        self.name: str = config["experiment"]
        self.layout = Layout.of(self.name)
        self.model = settings.from_dict(ModelSettings, config["model"], "model")
        self.compute = settings.from_dict(ComputeSettings, config["compute"], "compute")
        self.cluster = settings.from_dict(ClusterSettings, config["cluster"], "cluster")
        self.prompt = settings.from_dict(PromptSettings, config["prompt"], "prompt")
        self.seeds: list[int] = list(config["seeds"])
        self.module_groups: dict = config["module_groups"]
        made_here = suites_module(config["embedded"]["suites"])
        self.tasks = {name: self._suite("tasks", name, entry, ("train", *SPLITS), made_here.TASK_TYPES)
                      for name, entry in config["tasks"].items()}
        self.versatility = {name: self._suite("versatility", name, entry, SPLITS, made_here.SUITE_TYPES)
                            for name, entry in config["versatility"].items()}
        search = config["search"]
        policy_keys = {key: value for key, value in search.items() if key not in ("enabled", "reference", "seed", "lr")}
        self.importance: dict = config["importance"]
        self.landscape: dict = config["landscape"]
        self.landscape_seed: int = self.landscape["seed"] if self.landscape["seed"] is not None else self.seeds[0]
        self.tables: dict = config["tables"]
        self.claims = settings.from_dict(ClaimRows, config["claims"], "claims")
        self.evaluation: dict = config["evaluation"]
        self.threads: dict = config["threads"]
        self.runs: dict[str, Run] = {name: make_run(name, entry, config["training"], self.module_groups)
                                     for name, entry in expand_runs(config["runs"]).items()}
        reference = self.runs.get(search["reference"])  # a missing one is check_config's to report
        reference_lr = reference.train.lr if reference else None
        lrs = search["lr"] if search["lr"] is not None else [reference_lr] if reference else []
        if len({value_text(lr) for lr in lrs}) < len(lrs):  # a candidate's name gives its lr by this text
            raise ExperimentError(f"config key search.lr: {lrs} has values that print alike to 6 digits; give "
                                  "learning rates that differ in their first 6 significant digits")
        self.search = Search(enabled=search["enabled"], policy=settings.from_dict(Policy, policy_keys, "search"),
                             reference=search["reference"], lrs=tuple(lrs), reference_lr=reference_lr,
                             seed=search["seed"] if search["seed"] is not None else self.seeds[0])
        if self.model.path is not None and self.model.gguf is not None:
            raise ExperimentError("config keys model.path and model.gguf: give one (a Hugging Face directory, or a GGUF "
                                  "file cofi imports)")
        self.n_layers: int | None = config["embedded"]["base"]["layers"] if self.embedded_model else model_depth
        self.embedded_suites: str = config["embedded"]["suites"]  # what null suite paths take: world or chat

    def _suite(self, section: str, name: str, entry: dict, splits, embedded_types: dict[str, str]) -> Suite:
        """A suite of the config: its type as given, else the embedded data's (a suite with data of its own must
        name it: a multiple-choice file read as generation would be scored wrongly without a word); its metric as
        given, else its type's first (:mod:`cofi.evaluation.tasks`)."""
        from cofi.evaluation.tasks import TASK_TYPES

        paths = {split: entry[split] for split in splits}
        kind = entry["type"]
        if kind is None and any(path is not None for path in paths.values()):
            raise ExperimentError(f"config key {section}.{name}.type: a suite with data of its own must name its type "
                                  f"(one of {', '.join(TASK_TYPES)})")
        if kind is None:
            kind = embedded_types.get(name)  # None: no data at all, which the suite checks report
        metric = entry["metric"]
        if metric is None and kind in TASK_TYPES:
            metric = TASK_TYPES[kind].metrics[0]
        return Suite(name, kind, metric, paths, self.layout)

    # --- runs ---------------------------------------------------------------------------------------
    @cached_property
    def sweeps(self) -> dict[str, dict[str, str]]:
        """{swept run: {variant run: "key=value"}}, for the tables' tuned rows."""
        groups: dict[str, dict[str, str]] = {}
        for run in self.runs.values():
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
        for name, run in self.runs.items():
            identity = json.dumps({k: v for k, v in run.spec().items() if k != "name"}, sort_keys=True)
            shared[name] = first.setdefault(identity, name)
        return {name: storage for name, storage in shared.items() if storage != name}

    def storage(self, name: str) -> str:
        """The run whose files ``name``'s are (itself, unless :attr:`stored_as` names another)."""
        return self.stored_as.get(name, name)

    def run_file(self, run: str, task: str, seed, name: str) -> str:
        """A run's file at one task and seed, where it is stored (:meth:`storage`)."""
        return self.layout.run_file(self.storage(run), task, seed, name)

    def candidate(self, region_id: str, lr: float) -> str:
        """The run that trains search candidate ``region_id`` at ``lr``: ``region-<id>`` at the reference's lr,
        ``region-<id>_lr<lr>`` at another (so a longer lr list reuses every run trained before)."""
        return SEARCH_PREFIX + region_id + ("" if lr == self.search.reference_lr else f"_lr{value_text(lr)}")

    def candidate_run(self, region, lr: float) -> Run:
        """Search candidate ``region`` (a :class:`cofi.search.regions.Region`) at ``lr``, trained like the reference;
        its name is derived (:meth:`candidate`)."""
        reference = self.runs[self.search.reference]
        train = reference.train if lr == reference.train.lr else dataclasses.replace(reference.train, lr=lr)
        return Run(name=self.candidate(region.id, lr), method="region",
                   params={**region.to_dict(), "groups": self.module_groups},
                   train=train, sam_rho=reference.sam_rho, equal_compute=reference.equal_compute)

    def run(self, name: str) -> Run:
        """A configured run or sweep variant, or a search candidate (:meth:`candidate`: trained like the
        reference, at its lr or the one its name gives)."""
        if name in self.runs:
            return self.runs[name]
        if name.startswith(SEARCH_PREFIX):
            # A region id has one "_" (module group names have none): a second one starts the lr.
            span, _, rest = name[len(SEARCH_PREFIX):].partition("_")
            groups, _, lr = rest.partition("_")
            lr_value = self._search_lr(name, lr) if lr else self.search.reference_lr
            return self.candidate_run(parse_region_id(f"{span}_{groups}"), lr_value)
        raise KeyError(f"unknown run {name!r}: not in runs and not a search candidate")

    def _search_lr(self, name: str, text: str) -> float:
        """The configured search lr a candidate's name gives (``lr<value>``): looked up, never parsed back."""
        by_text = {f"lr{value_text(lr)}": lr for lr in self.search.lrs}
        if text not in by_text:
            raise KeyError(f"search candidate {name!r}: {text} is not one of search.lr ({', '.join(by_text)})")
        return by_text[text]

    def spec_with_pick(self, name: str, pick: dict) -> dict:
        """The spec of a run that trains the search's pick (``pick``: the search's result): the pick's region,
        and its lr unless the run sets its own."""
        run = self.run(name)
        region = parse_region_id(pick["selected"])
        spec = run.spec(**region.to_dict())
        if not run.own_lr and "lr" in pick:
            spec["train"] = {**spec["train"], "lr": pick["lr"]}
        return spec

    def method_of(self, name: str):
        from cofi.methods import METHODS

        return METHODS[self.run(name).method]

    @property
    def claim_rows(self) -> ClaimRows:
        """The claims settings as the claims job reads them: each old-data sweep expanded to its values' rows and
        its tuned row; CoFiTune's own rows (the coarse pick, every run of its method) added."""
        def rows_of(name: str) -> list[str]:
            return [*self.sweeps[name], tuned_row(name)] if name in self.sweeps else [name]

        old = [row for name in self.claims.old_data for row in rows_of(name)]
        claimed = self.claims.cofitune
        sweep = next((name for name in self.sweeps if tuned_row(name) == claimed), None)
        method = self.runs[next(iter(self.sweeps[sweep]))].method if sweep else \
            self.runs[claimed].method if claimed in self.runs else None
        own = {COARSE_ROW, *self.claims.own_rows}
        for name, run in self.runs.items():
            if method is not None and run.method == method:
                own |= {name, *([tuned_row(run.sweep)] if run.sweep else [])}
        return dataclasses.replace(self.claims, old_data=tuple(old), own_rows=tuple(sorted(own)))

    def trains_pick(self, name: str) -> bool:
        """The run trains the coarse search's pick (it waits for the search and takes its region)."""
        return self.method_of(name).trains_pick(self.run(name))

    @cached_property
    def uses_importance(self) -> bool:
        """Some run applies a soft mask, so the importance rule has work."""
        from cofi.methods.cofitune.softmask_keys import IMPORTANCE

        return any(IMPORTANCE in self.method_of(name).needs for name in self.runs)

    # --- data ---------------------------------------------------------------------------------------
    @property
    def embedded_model(self) -> bool:
        """The config names no model: the build_base rule builds the embedded one."""
        return self.model.path is None and self.model.gguf is None

    @property
    def embedded_data_fits_model(self) -> bool:
        """The data made here can train this model: the world the embedded model, the chat suites a real one."""
        return suites_module(self.embedded_suites).FITS_EMBEDDED_MODEL == self.embedded_model

    def embedded_spec(self):
        """The settings of the data made here (a WorldSpec or a ChatSuitesSpec)."""
        from cofi.data.embedded import spec_of

        return spec_of(self.embedded_suites, self.config["embedded"][self.embedded_suites])

    @property
    def base_model_dir(self) -> str:
        """The user's checkpoint, or the model a rule makes: the GGUF's import, or the embedded base model."""
        return self.model.path or self.layout.base_model

    def selection_split(self, task: str) -> str:
        """What the search and the tuned rows select on: 'val', or 'test' where a user gave no validation data."""
        suites = [self.tasks[task], *self.versatility.values()]
        return "test" if any(suite.selects_on_test() for suite in suites) else "val"

    def evaluation_suites(self, tasks: list[str], split: str) -> dict:
        """What ``cofi evaluate`` scores: Spec on ``tasks``, Vers on every versatility suite."""
        return {"spec": {t: self.tasks[t].spec(split) for t in tasks},
                "vers": {name: suite.spec(split) for name, suite in self.versatility.items()}}

    def importance_source(self, task: str) -> str:
        """Importance is estimated per task on its own inputs, or once on the versatility set."""
        return task if self.importance["source"] == "speciality" else "versatility"

    def importance_options(self) -> dict:
        """The importance job's options: the config's importance keys but where its data comes from, and without
        those left at null (so a finished estimate keeps its command line); gradient checkpointing where compute
        asks for it."""
        options = {k: v for k, v in self.importance.items() if k not in ("source", "versatility_data") and v is not None}
        if self.compute.gradient_checkpointing:
            options["gradient_checkpointing"] = True
        return options

    def importance_data(self, source: str) -> str:
        if source != "versatility":
            return self.tasks[source].file("train")
        return self.importance["versatility_data"] or self.layout.data_file("versatility_train")

    @property
    def table_rows(self) -> list[str]:
        """Every row the main table can have: the base model, each run and sweep variant, each sweep's tuned row,
        and the coarse search's pick."""
        return [BASE_ROW, *self.runs, *map(tuned_row, self.sweeps), *([COARSE_ROW] if self.search.enabled else [])]

    @property
    def table_reference(self) -> str:
        return self.tables["reference"] or self.search.reference
