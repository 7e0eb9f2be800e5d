"""Configuration: the schema (defaults), then checks of meaning and of the files named.

Everything here runs at start-up (from the Snakefile, or ``python -m cofi check-config``) so bad
input stops the workflow before any training. Errors name the config key or file:line. The checks
of a domain live with it (a task type's in :mod:`cofi.evaluation.tasks`, the world's in :mod:`cofi.data.world`, a
method's in its class, the model directory's in :mod:`cofi.models.loading`, the search policy's in
:mod:`cofi.search.policy`); this module reads the config, fills the schema's defaults, builds the
:class:`~cofi.config.experiment.Experiment` and calls them, adding what only the whole config can tell
(one key naming another's run, seed or file).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import yaml

from cofi.errors import InputError
from cofi.config.experiment import Experiment
from cofi.config.runs import RUN_OPTIONS
from cofi.config.names import BASE_ROW, tuned_row
from cofi.config.schema import SchemaError, validate_schema
from cofi.models.layers import PROJECTIONS


class ConfigError(InputError):
    """Bad configuration; the message names the config key (or file) and what was expected."""


def _read_legacy_runs(config: dict) -> None:
    """``methods:``, the runs section's former name, is read as ``runs:``."""
    if "methods" in config:
        if "runs" in config:
            raise ConfigError("config keys runs and methods: give the runs once, under runs (methods is its old name)")
        config["runs"] = config.pop("methods")
        print("cofi: config key methods: is read as runs: (its new name; rename it to silence this notice)",
              file=sys.stderr)


def _read_cluster_text(config: dict) -> None:
    """A site layer's ``config: {cluster: {...}}`` reaches the workflow as text: Snakemake reads a nested value given
    on its command line or in a profile with YAML's base loader, so ``gpus_per_node: 8`` arrives as ``"8"``. Read such
    values back as YAML (a number stays a number, a name a name)."""
    cluster = config.get("cluster")
    if isinstance(cluster, dict):
        config["cluster"] = {key: yaml.safe_load(value) if isinstance(value, str) else value
                             for key, value in cluster.items()}


def checked_experiment(config: dict, check_files: bool = True) -> Experiment:
    """Schema (defaults filled in place), then meaning: the :class:`Experiment` of a valid config."""
    _read_legacy_runs(config)
    _read_cluster_text(config)
    try:
        validate_schema(config)
    except SchemaError as error:
        raise ConfigError(str(error)) from None
    _check_run_entries(config)
    hub, hub_files = _hub_model(config) if check_files else (None, None)
    try:
        experiment = Experiment(config, _model_depth(config, hub_files) if check_files else None, hub, hub_files)
    except InputError as error:
        raise ConfigError(str(error)) from None
    _check_embedded(experiment)
    train_records, conversations = _check_suites(experiment, check_files)
    n_layers = experiment.n_layers
    projections = _projection_names_once(experiment)
    for check in (_check_module_groups, _check_runs, _check_importance, _check_search):
        check(experiment, n_layers, projections, check_files)
    _check_table_reference(experiment)
    _check_landscape(experiment)
    _check_realign(experiment)
    _check_claims(experiment)
    _check_selection(experiment)
    _check_backend(experiment, conversations)
    _check_prompt(experiment, train_records, conversations, check_files)
    return experiment


def _check_backend(experiment: Experiment, conversations: dict) -> None:
    """vLLM serves on GPUs: refused where jobs would run on a CPU (no GPU here, and no GPU cluster configured), or
    where vllm is not installed; its suites go through the harness, whose prompts are one user turn."""
    import importlib.util

    from cofi.data.prompts import one_exchange
    from cofi.evaluation.harness import CONVERSATIONS_UNSERVED

    if experiment.evaluation.backend != "vllm":
        return
    for key, (path, records) in conversations.items():
        if not key.endswith(".train") and (
                number := next((n for n, record in records if not one_exchange(record)), None)):
            raise ConfigError(f"config key {key}: {path}, record {number}: {CONVERSATIONS_UNSERVED}")
    if experiment.compute.device == "cpu":
        raise ConfigError("config key evaluation.backend: vllm serves on GPUs, and compute.device is cpu; use "
                          "backend: hf")
    if not experiment.cluster.has_gpus:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("config key evaluation.backend: vllm serves on GPUs, and this machine has none (nor "
                              "does cluster.gpus_per_node give the jobs any); use backend: hf")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("config key evaluation.backend: vllm is not installed (pip install vllm beside cofi; "
                          "docs/own-model.md), or use backend: hf")


def _hub_model(config: dict) -> tuple[tuple[str, str] | None, str | None]:
    """((repo, revision), where its files are) where model.path is a hub id (``owner/name[@revision]`` that names
    no directory): the experiment's fetched folder, or the hub cache's snapshot; neither is an error that says how
    to fetch it (only the fetch may go online)."""
    from cofi.config.layout import Layout
    from cofi.models.hub import HubError, model_source, parse_model_id

    path = (config.get("model") or {}).get("path")
    hub = parse_model_id(path) if isinstance(path, str) else None
    if hub is None:
        return None, None
    try:
        return hub, str(model_source(*hub, Layout.of(config["experiment"]).base_model))
    except HubError as error:
        raise ConfigError(f"config key {error}") from None


def _model_depth(config: dict, hub_files: str | None = None) -> int | None:
    """The decoder layers of the user's model (a Hugging Face directory, a hub id's files, or a GGUF file with its
    import), read from it before the experiment is built; None for the embedded model (the config says its depth)."""
    from cofi.config.layout import Layout
    from cofi.config.settings import ModelSettings, from_dict

    model = from_dict(ModelSettings, config["model"], "model")
    if model.path is not None and model.gguf is not None:
        return None  # one of the two: the experiment says so
    if model.path is not None:
        return _from_model(lambda m: m.model_depth(hub_files or model.path, model.trust_remote_code))
    if model.gguf is not None:
        from cofi.models.gguf import checked_header

        return _from_model(lambda m: checked_header(model.gguf, Layout.of(config["experiment"]).base_model)["layers"])
    return None


def check_config(config: dict, check_files: bool = True) -> dict:
    """:func:`checked_experiment`, returning the filled config."""
    checked_experiment(config, check_files)
    return config


def _from_model(read):
    """A model-directory fact, with its error as a config error."""
    from cofi.models import loading as modeling

    try:
        return read(modeling)
    except modeling.ModelError as error:
        raise ConfigError(str(error)) from None


def _check_embedded(experiment: Experiment) -> None:
    """The data made here can be built and fits the model; the embedded model's heads divide its width."""
    from cofi.data import world

    config = experiment.config
    base = config["embedded"]["base"]
    if base["hidden"] % base["heads"]:
        raise ConfigError("config key embedded.base.heads: must divide embedded.base.hidden")
    try:
        world.WorldSpec(**config["embedded"]["world"])
        experiment.embedded_spec()
    except ValueError as error:
        raise ConfigError(f"config key {error}") from None
    if experiment.embedded_suites == "chat" and experiment.embedded_model:
        raise ConfigError("config key embedded.suites: chat suites are English for a real chat model, which the "
                          "embedded word-level model cannot read; set model.gguf or model.path, or suites: world")


def _check_suites(experiment: Experiment, check_files: bool) -> tuple[dict[str, list[dict] | None], dict]:
    """Each suite's type and metric (:mod:`cofi.evaluation.tasks`), the type of embedded data (:mod:`cofi.data.embedded`), and
    every file a suite names. Returns each task's training records where the user gave them, and the conversation
    records of every file: {config key: (path, [(record number, record)])}."""
    from cofi.data.records import DataError, read_jsonl
    from cofi.data.embedded import suites_module
    from cofi.evaluation.tasks import task_type

    made_here = suites_module(experiment.embedded_suites)
    train_records, harness_suites, conversations = {}, {}, {}
    for section, suites, embedded in (("tasks", experiment.tasks, made_here.TASK_TYPES),
                                      ("versatility", experiment.versatility, made_here.SUITE_TYPES)):
        for name, suite in suites.items():
            key = f"{section}.{name}"
            # Null paths: embedded data; or a user suite's missing validation file (its test file serves). Harness
            # tasks are a suite's test split, and its validation split where it has no val file.
            own = {split: path for split, path in suite.paths.items()
                   if not (path is None and (name in embedded or (split == "val" and suite.paths.get("test"))))
                   and not (suite.harness and split != "train" and path is None)}
            if suite.harness:
                harness_suites[key] = suite.harness
                if own.get("train", "") is None:
                    raise ConfigError(f"config key {key}.train: harness tasks are what it is scored on, not trained "
                                      "on; give a JSONL of training examples")
            if missing := next((split for split, path in own.items() if path is None), None):
                raise ConfigError(f"config key {key}.{missing}: null means the embedded data, but the "
                                  f"{experiment.embedded_suites} suites have no {name!r} (they have "
                                  f"{', '.join(embedded)}); give a JSONL path")
            kind = None  # harness tasks alone have no file of the suite's type (their training file is instructions)
            if not (suite.harness and suite.type is None):
                try:
                    kind = task_type(key, suite.type)
                    kind.check_metric(key, suite.metric)
                except InputError as error:
                    raise ConfigError(str(error)) from None
            if name in embedded and suite.embedded and not suite.harness and suite.type != embedded[name]:
                raise ConfigError(f"config key {key}.type: the embedded {name} data is {embedded[name]}, not "
                                  f"{suite.type} (set type: {embedded[name]}, or give your own data paths)")
            for split, path in own.items():
                if not check_files:
                    continue
                try:  # training files are always instruction data; test files follow the suite's type
                    records = kind.read(path) if split != "train" else read_jsonl(path)
                except DataError as error:
                    raise ConfigError(f"config key {key}.{split}: {error}") from None
                if split == "train":
                    train_records[name] = records
                if talks := [(number, r) for number, r in enumerate(records, start=1) if r.get("messages")]:
                    conversations[f"{key}.{split}"] = (path, talks)
            if section == "tasks":
                train_records.setdefault(name, None)
    if check_files:
        from cofi.evaluation.harness import check_suites

        try:
            check_suites(harness_suites)
        except InputError as error:
            raise ConfigError(str(error)) from None
    return train_records, conversations


def _projection_names_once(experiment: Experiment):
    """A function giving the Linear module names in the model's decoder layers, computed on first use."""
    cache = {}

    def names() -> set[str] | None:
        if "names" not in cache:
            path = experiment.model_files
            if path is None:
                cache["names"] = set(PROJECTIONS)  # the embedded model or a GGUF's import (Llama only)
            elif not Path(path, "config.json").is_file():
                cache["names"] = None  # the model path check reports this
            else:
                cache["names"] = _from_model(lambda m: m.decoder_projections(path, experiment.model.trust_remote_code))
        return cache["names"]

    return names


def _check_module_groups(experiment: Experiment, n_layers, projection_names, check_files: bool) -> None:
    """Groups are well formed, and those a search or a region run uses name projections the model has."""
    from cofi.search.regions import RegionError, check_groups

    groups = experiment.module_groups
    try:
        check_groups(groups)
    except RegionError as error:
        raise ConfigError(f"config key module_groups: {error}") from None
    used = set(experiment.search.policy.root_modules) if experiment.search.enabled else set()
    used |= {m for entry in experiment.config["runs"].values() if "range" in entry for m in entry.get("modules") or []}
    used &= set(groups)
    if not used or (known := projection_names()) is None:
        return
    for group in sorted(used):
        if missing := [p for p in groups[group] if p not in known]:
            raise ConfigError(f"config key module_groups.{group}: the model's decoder layers have no {missing} "
                              f"(they have {', '.join(sorted(known))})")


def _check_run_entries(config: dict) -> None:
    """Each run's method exists and takes the keys given, with valid values (before the runs are built)."""
    from cofi.methods import check_run_entry, expand_method_paths
    from cofi.config.settings import TrainSettings, fields_of

    option_keys = (*(f.name for f, _ in fields_of(TrainSettings)), *RUN_OPTIONS)
    try:
        for run, entry in config["runs"].items():
            expand_method_paths(run, entry)
            check_run_entry(f"runs.{run}", run, entry, option_keys)
    except InputError as error:
        raise ConfigError(str(error)) from None


def _check_runs(experiment: Experiment, n_layers, projection_names, check_files: bool) -> None:
    """The methods' own checks of each run, and what the compute settings cannot train."""
    from cofi.methods import METHODS, CheckContext

    try:
        context = CheckContext(experiment, n_layers, projection_names, check_files)
        for name, run in experiment.runs.items():
            key = f"runs.{run.sweep or name}"
            METHODS[run.method].check(key, run, context)
            experiment.compute.check_run(run.sam_rho is not None, f"config key compute.precision (run {name})")
            _check_forgetting(experiment, key, run)
    except InputError as error:
        raise ConfigError(str(error)) from None


def _check_forgetting(experiment: Experiment, key: str, run) -> None:
    """``max_kl`` is a budget on what ``kl_every`` measures; the KL is measured on each task's validation file."""
    train = run.train
    if train.max_kl is not None and not train.kl_every:
        raise ConfigError(f"config key {key}.max_kl (or training.max_kl): a KL budget needs the KL measured; set "
                          "kl_every (e.g. 10)")
    if train.kl_every:
        for task, suite in experiment.tasks.items():
            if suite.harness and suite.paths.get("val") is None:
                raise ConfigError(f"config key tasks.{task}.val: kl_every measures the KL on the task's held-out "
                                  "prompts and their references; harness tasks have none here, give a val JSONL")


def _check_importance(experiment: Experiment, n_layers, projection_names, check_files: bool) -> None:
    if not experiment.uses_importance:
        return
    projection_names()  # importance hooks the decoder layers: refuses a model without the Llama layout
    importance = experiment.importance
    if importance.source != "versatility":
        return
    path = importance.versatility_data
    if path is None:
        if not experiment.embedded_data_fits_model:
            raise ConfigError(f"config key importance.versatility_data: null takes the {experiment.embedded_suites} "
                              "suites' versatility mixture, which does not fit this model; give a JSONL path")
        return
    from cofi.data.records import DataError, read_jsonl

    try:
        read_jsonl(path)
    except DataError as error:
        raise ConfigError(f"config key importance.versatility_data: {error}") from None


def _check_search(experiment: Experiment, n_layers, projection_names, check_files: bool) -> None:
    from cofi.search.policy import check_policy

    search = experiment.search
    if not search.enabled:
        return
    try:
        check_policy(search.policy, experiment.module_groups, n_layers)
    except InputError as error:
        raise ConfigError(str(error)) from None
    if search.reference in experiment.runs.sweeps:
        raise ConfigError(f"config key search.reference: {search.reference!r} is a sweep; its candidates need one set "
                          f"of hyperparameters (name one of its runs, e.g. {next(iter(experiment.runs.sweeps[search.reference]))})")
    if search.reference not in experiment.runs:
        raise ConfigError(f"config key search.reference: {search.reference!r} is not a configured run (the search needs "
                          "its Full SFT scores)")
    method = experiment.method_of(search.reference)
    if experiment.trains_pick(search.reference) or not method.trains:
        raise ConfigError(f"config key search.reference: {search.reference!r} trains the search's own pick or does "
                          "not train; name a Full SFT run")
    if experiment.config["search"]["seed"] is not None and search.seed not in experiment.seeds:
        raise ConfigError(f"config key search.seed: {search.seed} is not one of seeds {experiment.seeds}")
    if search.mode == "snr":  # ranks without training: nothing to train at other lrs, nothing to score
        if search.lrs != (search.reference_lr,):
            raise ConfigError(f"config key search.lr: {list(search.lrs)} under search.mode snr, which trains no "
                              f"candidate; its pick trains at the reference's lr ({search.reference_lr:g}): leave "
                              "search.lr null")
        if search.eval_items is not None:
            raise ConfigError("config key search.eval_items: set under search.mode snr, which scores no candidate; "
                              "leave it null")


def _check_table_reference(experiment: Experiment) -> None:
    """The row the normalised tables compare to: tables.reference (a run, or a sweep's tuned row), else
    the search's reference; and every row tables.labels names is a row of the tables."""
    rows = experiment.table_rows
    for row in experiment.tables.labels or {}:
        if row not in rows:
            raise ConfigError(f"config key tables.labels.{row}: not a row of the tables (rows: {', '.join(rows)})")
    reference = experiment.tables.reference
    if reference is None or reference in experiment.runs or reference in map(tuned_row, experiment.runs.sweeps):
        return
    if reference in experiment.runs.sweeps:
        raise ConfigError(f"config key tables.reference: {reference!r} is not a configured run (a sweep: name one of "
                          f"its runs, e.g. {next(iter(experiment.runs.sweeps[reference]))}, or {tuned_row(reference)})")
    raise ConfigError(f"config key tables.reference: {reference!r} is not a configured run "
                      f"(runs: {', '.join(experiment.runs)})")


def _check_landscape(experiment: Experiment) -> None:
    land = experiment.landscape
    for i, run in enumerate(land.runs):
        if run != BASE_ROW and run not in experiment.runs:
            raise ConfigError(f"config key landscape.runs[{i}]: {run!r} is not base or a configured run "
                              f"(runs: {', '.join(experiment.runs)})")
    for key in ("points_1d", "points_2d"):
        if getattr(land, key) % 2 == 0:
            raise ConfigError(f"config key landscape.{key}: {getattr(land, key)} is even; an odd count puts the centre "
                              "on the grid")
    if land.radius > land.span:
        raise ConfigError(f"config key landscape.radius: {land.radius} exceeds landscape.span {land.span}")
    if land.runs and (harness := [name for name, suite in experiment.versatility.items()
                                  if suite.harness and suite.paths.get("val") is None]):
        raise ConfigError(f"config key landscape.runs: the landscapes take their versatility loss from each suite's "
                          f"val JSONL, and versatility.{harness[0]} is harness tasks alone; give it a val file "
                          "(with its type), or set landscape.runs: []")
    if land.seed is not None and land.seed not in experiment.seeds:
        raise ConfigError(f"config key landscape.seed: {land.seed} is not one of seeds {experiment.seeds}")


def _check_realign(experiment: Experiment) -> None:
    """The probed rows are configured runs, each once, and some versatility suite has examples to realign on."""
    runs = experiment.realign.runs
    for i, run in enumerate(runs):
        if run not in experiment.runs:
            hint = " (the base model is always probed: it is the control)" if run == "base" else ""
            raise ConfigError(f"config key realign.runs[{i}]: {run!r} is not a configured run{hint}")
        if run in runs[:i]:
            raise ConfigError(f"config key realign.runs[{i}]: {run!r} is listed twice")
    if runs and not experiment.versatility_val_files():
        raise ConfigError("config key realign.runs: the probe trains on the versatility suites' val JSONL files, and "
                          "no suite has one; give one (with its type), or set realign.runs: []")


def _check_claims(experiment: Experiment) -> None:
    """Each claims row the config names (not ``auto``, not null) is a row of the tables (old_data may name a
    sweep: all its rows); the sharpness figure is a column of sharpness.csv."""
    from cofi.analysis.sharpness import COLUMNS
    from cofi.config.settings import AUTO

    claims, rows = experiment.claims, experiment.table_rows
    for field in dataclasses.fields(claims):
        key, value = field.name, getattr(claims, field.name)
        if key == "sharpness":
            if value not in COLUMNS:
                raise ConfigError(f"config key claims.sharpness: {value!r} is not a column of sharpness.csv (expected "
                                  f"one of {', '.join(COLUMNS)})")
            continue
        listed = isinstance(value, tuple)
        known = {*rows, *(experiment.runs.sweeps if key == "old_data" else ())}
        for index, row in (enumerate(value) if listed else [(None, value)]):
            if row is None or row == AUTO or row in known:
                continue
            where = f"claims.{key}" + (f"[{index}]" if index is not None else "")
            hint = "" if index is not None else "; auto finds it from the runs, null leaves its claim untested"
            raise ConfigError(f"config key {where}: {row!r} is not a row of the tables (rows: {', '.join(rows)}{hint})")


def _check_selection(experiment: Experiment) -> None:
    """Selection on validation by default: a search or a sweep's tuned row needs a validation file for every task
    and versatility suite it reads, unless the config chooses ``selection: test``."""
    if experiment.config["selection"] == "test" or not experiment.selects:
        return
    lacking = sorted({key for task in experiment.tasks for key in experiment.suites_without_val(task)})
    if lacking:
        raise ConfigError(
            f"config keys {', '.join(f'{key}.val' for key in lacking)}: no validation file, so the search and the "
            "tuned rows would choose on the test split. Give each a val file (JSONL, items the test file does not "
            "have), or set selection: test to choose on the test split where one is missing (every row it touches "
            "is flagged in the tables)")


def _check_prompt(experiment: Experiment, train_records: dict, conversations: dict, check_files: bool) -> None:
    """The template (:func:`cofi.data.prompts.check_template`); with ``chat_template`` a model whose tokenizer
    has one; conversation records the prompts can make (:func:`_check_conversations`); and every task's training
    data (and the embedded base model's mixture) has an example whose response starts within ``prompt.max_len``
    tokens, else training would find nothing to learn."""
    from cofi.data import prompts
    from cofi.data.embedded import suites_module

    prompt = experiment.prompt
    try:
        prompts.check_template(prompt.template)
    except InputError as error:
        raise ConfigError(f"config key prompt.template: {error}") from None
    if prompt.system is not None and not prompt.chat_template:
        raise ConfigError("config key prompt.system: a system turn needs prompt.chat_template: true (a string "
                          "template has no turns); set it to null, or use the model's chat template")
    if prompt.chat_template and experiment.embedded_model:
        raise ConfigError("config key prompt.chat_template: the embedded model has no chat template (its prompts are "
                          "prompt.template); set it false, or name a chat model in model.path or model.gguf")
    if check_files and not prompt.chat_template:
        _check_conversations(prompts.Prompter(None, prompt.template), conversations)
    if not check_files or not (prompt.mask_prompt or prompt.chat_template):
        return  # without masking the prompt's own tokens are labels as well
    data = {task: records for task, records in train_records.items() if records is not None}
    embedded = [task for task, records in train_records.items() if records is None]
    if embedded or experiment.embedded_model:
        built = suites_module(experiment.embedded_suites).build(experiment.embedded_spec())
        data |= {task: built[f"{task}_train"] for task in embedded}
        if experiment.embedded_model:
            data["the embedded base model's mixture"] = built["versatility_train"]
    if experiment.embedded_model:
        # The embedded tokenizer (cofi.models.loading.build_word_tokenizer) makes one token per word, after BOS.
        words = prompts.Prompter(None, prompt.template)
        lengths = lambda records: [1 + len(words.text(r).split()) for r in records]  # noqa: E731
    else:
        tokenizer = _tokenizer(experiment)
        if not prompt.chat_template and getattr(tokenizer, "chat_template", None):
            print(f"cofi: the model ({experiment.model.path or experiment.model.gguf}) has a chat template, and "
                  f"prompt.chat_template is false: its prompts are prompt.template ({prompt.template!r}), not the "
                  "format it was aligned on; set prompt.chat_template: true to use its own", file=sys.stderr)
        try:
            prompter = prompts.Prompter.of(tokenizer, prompt)
        except InputError as error:
            raise ConfigError(f"{error} (model {experiment.model.path or experiment.model.gguf})") from None
        if prompt.chat_template:
            _check_conversations(prompter, conversations)
        lengths = prompter.prompt_lengths
    if not prompt.mask_prompt:
        return  # the tokenizer has its chat template; without masking the prompt's tokens are labels too
    for name, records in data.items():
        shortest = min(lengths(records))
        if shortest >= prompt.max_len:
            raise ConfigError(f"config key prompt.max_len: {prompt.max_len} is too short: no training example of "
                              f"{name} keeps a response token (its shortest prompt takes {shortest} tokens); raise "
                              f"prompt.max_len above {shortest}")


CONVERSATIONS_CHECKED = 200  # per file: a template that rewrites earlier turns shows on the first long conversation


def _check_conversations(prompter, conversations: dict) -> None:
    """Conversation records the prompts can make: with a string template one exchange and no system turn; with the
    chat template, examples built turn by turn (a template that rewrites earlier turns cannot place the loss). The
    first :data:`CONVERSATIONS_CHECKED` of each file, where the chat template renders them."""
    for key, (path, records) in conversations.items():
        for number, record in records[:CONVERSATIONS_CHECKED] if prompter.chat else records:
            try:
                if prompter.chat:
                    prompter.example(record, mask_prompt=True, max_len=1)
                else:
                    prompter.text(record)
            except InputError as error:
                raise ConfigError(f"config key {key}: {path}, record {number}: {error}") from None


def _tokenizer(experiment: Experiment):
    """The model's tokenizer: from its directory, or from the GGUF file (its import, once made)."""
    from transformers import AutoTokenizer

    model = experiment.model
    if model.path is None and Path(experiment.base_model_dir, "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(experiment.base_model_dir, local_files_only=True)
    if model.path is None:
        gguf = Path(model.gguf)
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    return AutoTokenizer.from_pretrained(experiment.model_files, local_files_only=True,
                                         trust_remote_code=model.trust_remote_code)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of repeated keys silently (a second ``training:`` drops the first); refuse them."""

    def construct_mapping(self, node, deep=False):
        first_lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key == "<<":  # a merge key may repeat
                continue
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise ConfigError(f"{key_node.start_mark.name}:{line}: duplicate key {key!r} (first at line "
                                  f"{first_lines[key]}); a repeated key would silently replace the first")
            first_lines[key] = line
        return super().construct_mapping(node, deep)


def load_config(path: str | Path) -> dict:
    """A config file (YAML or JSON) as a dict; duplicate keys, bad YAML and non-mappings are refused."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: byte {error.start} is not valid UTF-8 (expected a UTF-8 YAML file)") from None
    try:
        loader = _StrictLoader(text)
        loader.name = str(path)
        try:
            config = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return config
