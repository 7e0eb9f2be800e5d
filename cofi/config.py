"""Configuration: defaults and schema validation, then checks of meaning and of the files named.

Everything here runs at start-up (from the Snakefile, or ``python -m cofi check-config``) so bad
input stops the workflow before any training. Errors name the config key or file:line.
"""

from __future__ import annotations

from cofi.errors import InputError

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from cofi import metrics, world
from cofi.data import DataError, read_jsonl
from cofi.methods import (METHODS, RUN_KEYS, TRAIN_KEYS, CheckContext, MethodError, configured_runs, resolve_run,
                          tuned_row)
from cofi.regions import RegionError, check_groups
from cofi.search import EXPANSIONS, Policy, first_candidates

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(InputError):
    """Bad configuration; the message names the config key (or file) and what was expected."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def fill_defaults(instance, schema: dict, root: dict | None = None):
    """Insert schema defaults for missing keys, recursively (in place); returns ``instance``."""
    root = root or schema
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return instance
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in instance:
            if key not in properties:
                fill_defaults(instance[key], extra, root)
    return instance


def expand_user_paths(instance, schema: dict, root: dict | None = None):
    """``~`` at the start of every value the schema marks ``format: path`` becomes the home directory (in place)."""
    root = root or schema
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return instance
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, value in instance.items():
        sub = properties.get(key, extra if isinstance(extra, dict) else None)
        if sub is None:
            continue
        sub = _resolve(sub, root)
        if sub.get("format") == "path" and isinstance(value, str):
            instance[key] = os.path.expanduser(value)
        else:
            expand_user_paths(value, sub, root)
    return instance


def validate_schema(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults and validate against the JSON schema; raise :class:`ConfigError` on the first error."""
    schema = schema or load_schema()
    fill_defaults(config, schema)
    expand_user_paths(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"config key {key}: {schema_message(error)}")
    return config


def schema_message(error) -> str:
    """jsonschema's message, with a hint where YAML read a number as a string (``3e-4``: no dot, no sign)."""
    text = error.message
    if error.validator == "type" and isinstance(error.instance, str):
        try:
            float(error.instance)
        except ValueError:
            return text
        mantissa, _, exponent = error.instance.lower().partition("e")
        if not exponent:
            return text + " (a quoted number is a string: write it without quotes)"
        # YAML 1.1 (PyYAML) takes an exponent as a float only with a dot and a signed exponent.
        mantissa += "" if "." in mantissa else ".0"
        exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
        text += f" (YAML reads {error.instance} as a string: write {mantissa}e{exponent})"
    return text


def _check_suite(key: str, suite: dict, embedded: dict[str, str], name: str, fields: tuple) -> list[dict] | None:
    """Type and metric; an embedded suite's type is the one its data has; the files a suite names are valid.
    Returns the records of the suite's training file, where it names one."""
    kind, metric = suite["type"], suite["metric"]
    if kind not in metrics.TASK_TYPES:
        raise ConfigError(f"config key {key}.type: unknown task type {kind!r} (expected one of {sorted(metrics.TASK_TYPES)})")
    if metric not in metrics.TASK_TYPES[kind]:
        raise ConfigError(
            f"config key {key}.metric: unknown metric {metric!r} for type {kind!r} "
            f"(expected one of {list(metrics.TASK_TYPES[kind])})"
        )
    paths = ("train", "test", "val") if "train" in suite else ("test", "val")
    if name in embedded and kind != embedded[name] and any(suite[f] is None for f in paths if f != "val"):
        raise ConfigError(f"config key {key}.type: the embedded {name} data is {embedded[name]}, not {kind} "
                          f"(set type: {embedded[name]}, or give your own data paths)")
    train = None
    for field in fields:
        path = suite[field]
        if path is None and field == "val" and name not in embedded:
            continue  # user suites without validation data fall back to their test file
        if path is None:
            if name not in embedded:
                raise ConfigError(
                    f"config key {key}.{field}: null means the embedded data, but the embedded world has no "
                    f"{name!r} (it has {', '.join(embedded)}); give a JSONL path"
                )
            continue
        # Train files are always instruction data; test files follow the suite's type.
        try:
            records = read_jsonl(path, multiple_choice=(field == "test" and kind == "multiple_choice"))
        except DataError as error:
            raise ConfigError(f"config key {key}.{field}: {error}") from None
        if field == "train":
            train = records
    return train if "train" in fields and suite.get("train") else None


def check_config(config: dict, check_files: bool = True) -> dict:
    """Schema, then meaning: task types and metrics, methods, the template, data files and model."""
    validate_schema(config)
    base = config["embedded"]["base"]
    if base["hidden"] % base["heads"]:
        raise ConfigError("config key embedded.base.heads: must divide embedded.base.hidden")
    train_records = {}
    for name, task in config["tasks"].items():
        train_records[name] = _check_suite(f"tasks.{name}", task, world.TASK_TYPES, name,
                                           ("train", "test", "val") if check_files else ())
    for name, suite in config["versatility"].items():
        _check_suite(f"versatility.{name}", suite, world.SUITE_TYPES, name, ("test", "val") if check_files else ())
    n_layers = None
    if config["model"]["path"] is None:
        n_layers = config["embedded"]["base"]["layers"]
    elif check_files:
        n_layers = _model_depth(config)
    _check_runs_and_search(config, n_layers)
    if config["compute"]["precision"] == "fp16":
        with_sam = sorted(name for name, entry in configured_runs(config).items() if (entry.get("sam") or {}).get("rho"))
        if with_sam:
            raise ConfigError(f"config key compute.precision: fp16 cannot train runs with SAM ({', '.join(with_sam)}): "
                              "the loss scaler and SAM's ascent do not mix; use bf16")
    try:
        config["prompt"]["template"].format(instruction="", input="")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"config key prompt.template: must be a format string using only {{instruction}} and {{input}} ({error!r})"
        ) from None
    _check_world(config)
    if check_files:
        _check_max_len(config, train_records)
    return config


def _check_world(config: dict) -> None:
    """The embedded world can be built (only where some data or the base model comes from it)."""
    try:
        world.WorldSpec(**config["embedded"]["world"])
    except ValueError as error:
        raise ConfigError(f"config key {error}") from None


def _check_max_len(config: dict, train_records: dict[str, list[dict] | None]) -> None:
    """Every task's training data (and the embedded base model's mixture) has an example whose response
    starts within ``prompt.max_len`` tokens; else training would find nothing to learn, after the base
    model was built."""
    from cofi.prompts import render_prompt

    prompt = config["prompt"]
    if not prompt["mask_prompt"]:
        return  # the prompt's own tokens are labels as well
    data = {task: records for task, records in train_records.items() if records is not None}
    embedded = [task for task, records in train_records.items() if records is None]
    if embedded or config["model"]["path"] is None:
        built = world.build_world(world.WorldSpec(**config["embedded"]["world"]))
        data |= {task: built[f"{task}_train"] for task in embedded}
        if config["model"]["path"] is None:
            data["the embedded base model's mixture"] = built["versatility_train"]
    if config["model"]["path"] is None:
        # The embedded tokenizer (cofi.modeling.build_word_tokenizer) makes one token per word, after BOS.
        lengths = lambda prompts: [1 + len(p.split()) for p in prompts]  # noqa: E731
    else:
        from transformers import AutoTokenizer

        from cofi.prompts import prompt_lengths

        tokenizer = AutoTokenizer.from_pretrained(config["model"]["path"], local_files_only=True,
                                                  trust_remote_code=config["model"]["trust_remote_code"])
        lengths = lambda prompts: prompt_lengths(tokenizer, prompts)  # noqa: E731
    for name, records in data.items():
        shortest = min(lengths([render_prompt(r, prompt["template"]) for r in records]))
        if shortest >= prompt["max_len"]:
            raise ConfigError(f"config key prompt.max_len: {prompt['max_len']} is too short: no training example of "
                              f"{name} keeps a response token (its shortest prompt takes {shortest} tokens); raise "
                              f"prompt.max_len above {shortest}")


def model_depth(config: dict) -> int:
    """Number of decoder layers of the configured model (the embedded one, or read from config.json)."""
    if config["model"]["path"] is None:
        return config["embedded"]["base"]["layers"]
    return _model_depth(config)


def _model_depth(config: dict) -> int:
    from transformers import AutoConfig

    from cofi.modeling import ModelError, check_model_dir  # transformers is slow to import

    try:
        check_model_dir(config["model"]["path"], config["model"]["trust_remote_code"])
    except ModelError as error:
        raise ConfigError(str(error)) from None
    model_config = AutoConfig.from_pretrained(
        config["model"]["path"], trust_remote_code=config["model"]["trust_remote_code"], local_files_only=True
    )
    return model_config.num_hidden_layers


def _check_runs_and_search(config: dict, n_layers: int | None) -> None:
    """Module groups, runs and the search policy; layer counts only where the depth is known."""
    groups = config["module_groups"]
    try:
        check_groups(groups)
    except RegionError as error:
        raise ConfigError(f"config key module_groups: {error}") from None
    projection_names = _projection_names_once(config)
    _check_runs(config, n_layers, projection_names)
    _check_group_projections(config, projection_names)
    _check_importance(config, projection_names)
    _check_search(config, n_layers)
    _check_table_reference(config)
    _check_landscape(config)


def _check_search(config: dict, n_layers: int | None) -> None:
    search, groups = config["search"], config["module_groups"]
    if not search["enabled"]:
        return
    for i, name in enumerate(search["schedule"]):
        if name not in EXPANSIONS:
            raise ConfigError(f"config key search.schedule[{i}]: unknown step {name!r} (known: {', '.join(EXPANSIONS)})")
    unknown = [m for m in search["root_modules"] if m not in groups]
    if unknown:
        raise ConfigError(f"config key search.root_modules: unknown module group(s) {unknown} (defined: {sorted(groups)})")
    if search["reference"] not in config["methods"]:
        raise ConfigError(f"config key search.reference: {search['reference']!r} is not a run in methods (the search needs its Full SFT scores)")
    reference = config["methods"][search["reference"]]
    if isinstance(reference.get("lr"), list):
        raise ConfigError(f"config key search.reference: {search['reference']!r} is a learning-rate sweep; its candidates "
                          "need one set of hyperparameters (name a run with one lr)")
    reference_method = METHODS[reference.get("method", search["reference"])]
    if "search_region" in reference_method.needs or not reference_method.trains:
        raise ConfigError(f"config key search.reference: {search['reference']!r} trains the search's own pick or does "
                          "not train; name a Full SFT run")
    if search["seed"] is not None and search["seed"] not in config["seeds"]:
        raise ConfigError(f"config key search.seed: {search['seed']} is not one of seeds {config['seeds']}")
    if n_layers is not None and not first_candidates(search_policy(config), n_layers):
        raise ConfigError(f"config key search.min_layers: no first-depth candidate keeps {search['min_layers']} layers of {n_layers}")


def _check_table_reference(config: dict) -> None:
    """The row the normalised tables compare to: tables.reference (a run, or a sweep's tuned row), else
    the search's reference."""
    reference = config["tables"]["reference"]
    if reference is None:
        return
    runs = configured_runs(config)
    tuned_rows = {tuned_row(entry["sweep_of"]) for entry in runs.values() if "sweep_of" in entry}
    if reference not in runs and reference not in tuned_rows:
        sweep = " (a sweep: name one of its runs, e.g. " + next((n for n, e in runs.items() if e.get("sweep_of") == reference), "") + ")"
        raise ConfigError(f"config key tables.reference: {reference!r} is not a configured run"
                          + (sweep if reference in config["methods"] else f" (runs: {', '.join(runs)})"))


def _check_landscape(config: dict) -> None:
    land = config["landscape"]
    runs = configured_runs(config)
    for i, run in enumerate(land["runs"]):
        if run != "base" and run not in runs:
            raise ConfigError(f"config key landscape.runs[{i}]: {run!r} is not base or a configured run (runs: {', '.join(runs)})")
    for key in ("points_1d", "points_2d"):
        if land[key] % 2 == 0:
            raise ConfigError(f"config key landscape.{key}: {land[key]} is even; an odd count puts the centre on the grid")
    if land["radius"] > land["span"]:
        raise ConfigError(f"config key landscape.radius: {land['radius']} exceeds landscape.span {land['span']}")
    if land["seed"] is not None and land["seed"] not in config["seeds"]:
        raise ConfigError(f"config key landscape.seed: {land['seed']} is not one of seeds {config['seeds']}")


def table_reference(config: dict) -> str:
    return config["tables"]["reference"] or config["search"]["reference"]


def _check_group_projections(config: dict, projection_names) -> None:
    """The module groups a search or a region run uses name projections the model has."""
    used = set(config["search"]["root_modules"]) if config["search"]["enabled"] else set()
    used |= {m for entry in config["methods"].values() if "range" in entry for m in entry.get("modules") or []}
    used &= set(config["module_groups"])
    if not used or (known := projection_names()) is None:
        return
    for group in sorted(used):
        if missing := [p for p in config["module_groups"][group] if p not in known]:
            raise ConfigError(f"config key module_groups.{group}: the model's decoder layers have no {missing} "
                              f"(they have {', '.join(sorted(known))})")


def _check_runs(config: dict, n_layers: int | None, projection_names) -> None:
    """Each run's method exists and takes the keys given, with valid values; then the method's own checks."""
    for run, entry in config["methods"].items():
        _check_run_keys(f"methods.{run}", run, entry)
    try:
        runs = configured_runs(config)
    except MethodError as error:
        raise ConfigError(str(error)) from None
    context = CheckContext(config, n_layers, runs, projection_names=projection_names)
    for name, entry in runs.items():
        method, params = resolve_run(config, name)
        try:
            METHODS[method].check(f"methods.{entry.get('sweep_of', name)}", params, context)
        except MethodError as error:
            raise ConfigError(str(error)) from None


def _check_run_keys(key: str, run: str, entry: dict) -> None:
    import jsonschema

    name = entry.get("method", run)
    if name not in METHODS:
        raise ConfigError(f"config key {key}: unknown method {name!r} (registered: {', '.join(sorted(METHODS))})")
    method = METHODS[name]
    for field, value in list(entry.items()):
        if field in RUN_KEYS:
            continue  # the schema checked these
        if field not in method.keys:
            takers = sorted(m for m, spec in METHODS.items() if field in spec.keys)
            where = f"only {', '.join(takers)}" if takers else f"{name!r} takes {', '.join(method.keys) or 'no keys of its own'}"
            raise ConfigError(f"config key {key}.{field}: method {name!r} does not take it ({where})")
        swept = field in method.sweep and isinstance(value, list)
        if swept and not value:
            raise ConfigError(f"config key {key}.{field}: an empty list (give one value, or a list of values)")
        schema = {k: v for k, v in method.keys[field].items() if k not in ("default", "description")}
        if schema.get("format") == "path" and isinstance(value, str):
            entry[field] = value = os.path.expanduser(value)
        for item in value if swept else [value]:
            error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(item))
            if error is not None:
                raise ConfigError(f"config key {key}.{field}: {schema_message(error)}")
    if not method.trains:
        given = [k for k in (*TRAIN_KEYS, "sam", "equal_compute") if k in entry]
        if given:
            raise ConfigError(f"config key {key}.{given[0]}: method {name!r} does not train (set it on the run it builds on)")
    if entry.get("sam") and entry.get("equal_compute"):
        raise ConfigError(f"config key {key}.equal_compute: doubles a plain optimizer's steps to match SAM's two passes; "
                          "this run uses SAM itself")


def _projection_names_once(config: dict):
    """A function giving the Linear module names in the model's decoder layers, computed on first use."""
    cache = {}

    def names() -> set[str] | None:
        if "names" not in cache:
            cache["names"] = _projection_names(config)
        return cache["names"]

    return names


# The Linear modules of a LlamaForCausalLM decoder layer, i.e. of the embedded model (a test checks it).
EMBEDDED_PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})


LLAMA_LAYOUT = ("the Llama-family layout: decoder layers at *.layers.N, with self_attn.{q,k,v,o}_proj and "
                "mlp.{gate,up,down}_proj")


def _projection_names(config: dict) -> set[str] | None:
    """A user's model: from a weightless copy (meta device), nothing loaded or allocated. Refuses a model
    whose decoder layers are not where regions, importance and soft masks look for them."""
    path, remote = config["model"]["path"], config["model"]["trust_remote_code"]
    if path is None:
        return set(EMBEDDED_PROJECTIONS)
    import torch  # only for a user's model: reading the embedded default's config stays fast
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        model_config = AutoConfig.from_pretrained(path, trust_remote_code=remote, local_files_only=True)
    except (OSError, ValueError):
        return None  # the model path check reports this
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=remote)
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and ".layers." in name}
    if not names:
        stacks = [name for name, module in model.named_modules() if isinstance(module, torch.nn.ModuleList)]
        where = f"at {stacks[0]}.0, {stacks[0]}.1, …" if stacks else "in no module list"
        raise ConfigError(f"model.path {path!r}: cofi needs {LLAMA_LAYOUT}; {type(model).__name__} keeps its "
                          f"decoder layers {where}")
    return names


def _check_importance(config: dict, projection_names) -> None:
    if not any("importance" in METHODS[entry.get("method", run)].needs for run, entry in config["methods"].items()):
        return
    projection_names()  # importance hooks the decoder layers: refuses a model without the Llama layout
    importance = config["importance"]
    if importance["source"] != "versatility":
        return
    path = importance["versatility_data"]
    if path is None:
        if config["model"]["path"] is not None:
            raise ConfigError("config key importance.versatility_data: null takes the embedded world's versatility "
                              "mixture, which only fits the embedded model; give a JSONL path for your own model")
        return
    try:
        read_jsonl(path)
    except DataError as error:
        raise ConfigError(f"config key importance.versatility_data: {error}") from None


def search_policy(config: dict) -> Policy:
    s = config["search"]
    return Policy(mode=s["mode"], schedule=tuple(s["schedule"]), beam=s["beam"], criterion=s["criterion"],
                  spec_floor=s["spec_floor"], margin=s["margin"], max_depth=s["max_depth"],
                  min_layers=s["min_layers"], root_modules=tuple(s["root_modules"]))


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
