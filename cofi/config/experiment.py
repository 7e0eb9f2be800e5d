"""The experiment, typed (pure: no torch, no Snakemake): built once from the validated config.

The Snakefile and every job read the same objects: an :class:`Experiment` holds the tasks and
versatility suites with their files, the settings of each section, and, each from its own module,
its runs (:class:`cofi.config.runs.Runs`: sweeps expanded, options resolved), the search and its
candidates (:mod:`cofi.config.candidates`), where every output goes (:class:`Layout`) and the claims'
rows (:func:`cofi.config.claim_rows.claim_rows`). Nothing here reads a file; the checks of meaning that need
files or the model are :func:`cofi.config.checks.check_config`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cofi.config import settings
from cofi.config.candidates import Candidates, Search
from cofi.config.layout import Layout
from cofi.config.claim_rows import claim_rows, untested_claims
from cofi.config.names import BASE_ROW, COARSE_ROW, tuned_row
from cofi.config.runs import Run, Runs, expand_runs, make_run
from cofi.config.settings import (ClaimRows, ClusterSettings, ComputeSettings, EvaluationSettings, ImportanceSettings,
                                  LandscapeSettings, ModelSettings, PromptSettings, RealignSettings, TablesSettings,
                                  ThreadsSettings)
from cofi.data.embedded import suites_module
from cofi.errors import InputError

SPLITS = ("test", "val")


class ExperimentError(InputError):
    """A config whose runs or references do not fit together; the message names the config key."""


@dataclass(frozen=True)
class Suite:
    """A speciality task or a versatility suite: its type, metric and data files (null: embedded)."""

    name: str
    type: str | None
    metric: str | None
    paths: dict  # split -> the configured path or None (embedded)
    layout: Layout
    harness: dict | None = None  # harness tasks as the test split: {"lm_eval", "num_fewshot", "metric", "include"}
    max_new_tokens: int | None = None  # an answer's length where configured (else the type's default)

    @property
    def embedded(self) -> bool:
        splits = ("train",) if self.harness else ("train", "test")
        return any(self.paths.get(split) is None for split in splits if split in self.paths)

    def file(self, split: str) -> str:
        """The file of ``split``; a user suite without validation data is selected on its test file."""
        if self.paths.get(split) is not None:
            return self.paths[split]
        if split == "val" and self.paths.get("test") is not None:
            return self.paths["test"]
        return self.layout.data_file(f"{self.name}_{split}")

    def selects_on_test(self) -> bool:
        if self.harness:
            return self.paths.get("val") is None
        return self.file("val") == self.file("test")

    def spec(self, split: str) -> dict:
        """What an evaluation job needs of it: a JSONL file with its type and metric, or harness tasks (the test split;
        the validation split too where the suite has no val file of its own)."""
        if self.harness and (split == "test" or self.paths.get("val") is None):
            return dict(self.harness)
        configured = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens is not None else {}
        return {"path": self.file(split), "type": self.type, "metric": self.metric} | configured


class Experiment:
    """One experiment, from a config that :func:`cofi.config.checks.validate_schema` has filled and checked."""

    def __init__(self, config: dict, model_depth: int | None = None, hub: tuple[str, str] | None = None,
                 hub_files: str | None = None):
        """``model_depth``: the decoder layers of a user's model, read from it by the start-up check (None: unknown;
        the embedded model's come from the config). ``hub``: (repo, revision) where model.path is a hub id, which the
        start-up check found in ``hub_files`` (the experiment's fetched folder, or the hub cache's snapshot)."""
        self.config = config
        self.hub, self._hub_files = hub, hub_files
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
        self.importance = settings.from_dict(ImportanceSettings, config["importance"], "importance")
        self.landscape = settings.from_dict(LandscapeSettings, config["landscape"], "landscape")
        self.landscape_seed: int = self.landscape.seed if self.landscape.seed is not None else self.seeds[0]
        self.tables = settings.from_dict(TablesSettings, config["tables"], "tables")
        self.claims = settings.from_dict(ClaimRows, config["claims"], "claims")
        scoring = {key: value for key, value in config["evaluation"].items() if key != "generation"}
        self.evaluation = settings.from_dict(EvaluationSettings, scoring, "evaluation")
        self.generation: dict = config["evaluation"]["generation"]  # decoding options over the generation config
        self.threads = settings.from_dict(ThreadsSettings, config["threads"], "threads")
        self.runs = Runs((name, make_run(name, entry, config["training"], self.module_groups))
                         for name, entry in expand_runs(config["runs"]).items())
        self.realign = settings.from_dict(RealignSettings, config["realign"], "realign")
        # The probe's training: every weight, a few steps, no warm-up, nothing watched (a run of method full).
        realign = {"method": "full", "steps": self.realign.steps, "lr": self.realign.lr or config["training"]["lr"],
                   "batch_size": min(self.realign.examples, config["training"]["batch_size"]), "grad_accum": 1,
                   "warmup_ratio": 0.0, "kl_every": 0, "max_kl": None}
        self.realign_run = make_run("realign", realign, config["training"], self.module_groups)
        reference = self.runs.get(config["search"]["reference"])  # a missing one is check_config's to report
        self.search = Search.of(config["search"], reference, self.seeds[0])
        self.candidates = Candidates(self.search, reference, self.module_groups)
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
        if entry["lm_eval"]:
            if entry["max_new_tokens"] is not None:
                raise ExperimentError(f"config key {section}.{name}.max_new_tokens: harness tasks keep their own "
                                      "answer lengths (their generation_kwargs); remove it")
            return self._harness_suite(section, name, entry, paths)
        for key in ("num_fewshot", "include"):
            if entry[key] is not None:
                raise ExperimentError(f"config key {section}.{name}.{key}: only for harness tasks (set {section}.{name}"
                                      ".lm_eval, or remove it)")
        if kind is None and any(path is not None for path in paths.values()):
            raise ExperimentError(f"config key {section}.{name}.type: a suite with data of its own must name its type "
                                  f"(one of {', '.join(TASK_TYPES)})")
        if kind is None:
            kind = embedded_types.get(name)  # None: no data at all, which the suite checks report
        metric = entry["metric"]
        if metric is None and kind in TASK_TYPES:
            metric = TASK_TYPES[kind].metrics[0]
        if entry["max_new_tokens"] is not None and kind in TASK_TYPES and TASK_TYPES[kind].multiple_choice:
            raise ExperimentError(f"config key {section}.{name}.max_new_tokens: a multiple_choice suite generates "
                                  "nothing (it compares its choices' log-likelihoods); remove it")
        return Suite(name, kind, metric, paths, self.layout, max_new_tokens=entry["max_new_tokens"])

    def _harness_suite(self, section: str, name: str, entry: dict, paths: dict) -> Suite:
        """Harness tasks as the test split; a val JSONL of the suite's type, where given, is what selection reads
        (scored with the type's first metric: ``metric`` is the harness's)."""
        from cofi.evaluation.tasks import TASK_TYPES

        key = f"{section}.{name}"
        if paths.get("test") is not None:
            raise ExperimentError(f"config key {key}.test: the harness tasks in {key}.lm_eval are the test split; "
                                  "remove test (or lm_eval)")
        kind = entry["type"]
        if paths.get("val") is not None and kind is None:
            raise ExperimentError(f"config key {key}.type: a val file beside harness tasks must name its type (one "
                                  f"of {', '.join(TASK_TYPES)})")
        harness = {"lm_eval": list(entry["lm_eval"]), "num_fewshot": entry["num_fewshot"], "metric": entry["metric"],
                   "include": entry["include"]}
        metric = TASK_TYPES[kind].metrics[0] if kind in TASK_TYPES else None
        return Suite(name, kind, metric, paths, self.layout, harness)

    # --- runs ---------------------------------------------------------------------------------------
    def run_file(self, run: str, task: str, seed, name: str) -> str:
        """A run's file at one task and seed, where it is stored (:meth:`Runs.storage`)."""
        return self.layout.run_file(self.runs.storage(run), task, seed, name)

    def run(self, name: str) -> Run:
        """A configured run or sweep variant, or a search candidate (trained like the reference)."""
        return self.runs[name] if name in self.runs else self.candidates.named(name)

    def method_of(self, name: str):
        from cofi.methods import METHODS

        return METHODS[self.run(name).method]

    @property
    def claim_rows(self) -> ClaimRows:
        return claim_rows(self.claims, self.runs, self.search.reference, self.search.enabled)

    @property
    def untested_claims(self) -> dict[str, str]:
        """{claim: what it needs} of the claims this config cannot test (or tests only in part)."""
        return untested_claims(self.claim_rows, self.table_rows, self.search.enabled, list(self.landscape.runs))

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
        """The user's checkpoint, or the model a rule makes: the GGUF's import, a hub id's fetch, or the embedded base
        model."""
        return self.layout.base_model if self.hub else self.model.path or self.layout.base_model

    @property
    def model_files(self) -> str | None:
        """Where the start-up checks read the user's model: its directory, or for a hub id the fetched folder or the
        cached snapshot (None: a model a rule makes from the config or a GGUF file)."""
        return self._hub_files if self.hub else self.model.path

    def selection_split(self, task: str) -> str:
        """What the search and the tuned rows select on: 'val', or 'test' where a user gave no validation data
        (allowed only under ``selection: test``: the start-up check refuses it otherwise)."""
        return "test" if self.suites_without_val(task) else "val"

    def suites_without_val(self, task: str) -> list[str]:
        """The config keys of the suites a selection on ``task`` reads that have no validation file."""
        suites = {f"tasks.{task}": self.tasks[task], **{f"versatility.{n}": s for n, s in self.versatility.items()}}
        return [key for key, suite in suites.items() if suite.selects_on_test()]

    @property
    def selects(self) -> bool:
        """Something chooses on the selection split: the search, or a sweep's tuned row."""
        return self.search.enabled or bool(self.runs.sweeps)

    def selected_on_test(self) -> dict[str, list[str]]:
        """{task: the rows chosen on its test split}: under ``selection: test``, each task lacking validation data,
        with the rows that choice touches (each sweep's tuned row, the search's pick and the runs that train it)."""
        touched = [tuned_row(sweep) for sweep in self.runs.sweeps]
        if self.search.enabled:
            touched += [COARSE_ROW, *(name for name in self.runs if self.trains_pick(name))]
        return {task: touched for task in self.tasks if self.selection_split(task) == "test" and touched}

    def evaluation_suites(self, tasks: list[str], split: str) -> dict:
        """What ``cofi evaluate`` scores: Spec on ``tasks``, Vers on every versatility suite."""
        return {"spec": {t: self.tasks[t].spec(split) for t in tasks},
                "vers": {name: suite.spec(split) for name, suite in self.versatility.items()}}

    def watches_forgetting(self, run: str) -> bool:
        """The run measures its KL while it trains (``training.kl_every``; Wise-FT builds its weights, no training)."""
        return bool(self.run(run).train.kl_every) and self.method_of(run).trains

    def forgetting_files(self, task: str) -> dict:
        """What a run watching its forgetting measures on (:class:`cofi.jobs.finetune.FinetuneJob`): the task's
        validation file, and the versatility suites' (:meth:`versatility_val_files`)."""
        task_suite = self.tasks[task]
        return {"task": {"path": task_suite.file("val"), "type": task_suite.type}, "vers": self.versatility_val_files()}

    def versatility_val_files(self) -> dict:
        """{suite: {"path", "type"}} of each versatility suite with a JSONL validation file, whose items have
        references (a harness task without one has none to read): the forgetting sample and the realignment
        probe's examples."""
        return {name: {"path": suite.file("val"), "type": suite.type} for name, suite in self.versatility.items()
                if not suite.harness or suite.paths.get("val") is not None}

    @property
    def realign_rows(self) -> list[str]:
        """The rows the realignment probe scores again: the base model (the control), then realign.runs."""
        return [BASE_ROW, *self.realign.runs] if self.realign.runs else []

    def realign_source(self, row: str, task: str, seed) -> str:
        """The model a row's probe starts from: the base model, or the row's model at that task and seed."""
        if row == BASE_ROW:
            return self.base_model_dir
        return self.run_file(row, task, seed, "model")

    def forgetting_samples(self, run: str, task: str) -> dict | None:
        """:meth:`forgetting_files` for a run that watches its forgetting, else None."""
        return self.forgetting_files(task) if self.watches_forgetting(run) else None

    def importance_source(self, task: str) -> str:
        """Importance is estimated per task on its own inputs, or once on the versatility set."""
        return task if self.importance.source == "speciality" else "versatility"

    def importance_options(self) -> dict:
        """The importance job's options: the config's importance keys but where its data comes from, and without
        those left at null (so a finished estimate keeps its command line); gradient checkpointing where compute
        asks for it."""
        options = {k: v for k, v in settings.to_dict(self.importance).items()
                   if k not in ("source", "versatility_data") and v is not None}
        if self.compute.gradient_checkpointing:
            options["gradient_checkpointing"] = True
        return options

    def importance_data(self, source: str) -> str:
        if source != "versatility":
            return self.tasks[source].file("train")
        return self.importance.versatility_data or self.layout.data_file("versatility_train")

    @property
    def table_rows(self) -> list[str]:
        """Every row the main table can have: the base model, each run and sweep variant, each sweep's tuned row,
        and the coarse search's pick."""
        return [BASE_ROW, *self.runs, *map(tuned_row, self.runs.sweeps), *([COARSE_ROW] if self.search.enabled else [])]

    @property
    def table_reference(self) -> str:
        return self.tables.reference or self.search.reference
