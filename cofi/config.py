"""Configuration: defaults and schema validation, then checks of meaning and of the files named.

Everything here runs at start-up (from the Snakefile, or ``python -m cofi check-config``) so bad
input stops the workflow before any training. Errors name the config key or file:line.
"""

from __future__ import annotations

from cofi.errors import InputError

import copy
from pathlib import Path

import jsonschema
import yaml

from cofi import metrics
from cofi.data import DataError, read_jsonl
from cofi.methods import METHODS

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
EMBEDDED_TASKS = ("bio", "rotate")
EMBEDDED_SUITES = metrics.VERSATILITY_DIMENSIONS


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


def validate_schema(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults and validate against the JSON schema; raise :class:`ConfigError` on the first error."""
    schema = schema or load_schema()
    fill_defaults(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"config key {key}: {error.message}")
    return config


def _check_suite(key: str, suite: dict, embedded_names: tuple, name: str, fields: tuple) -> None:
    kind, metric = suite["type"], suite["metric"]
    if kind not in metrics.TASK_TYPES:
        raise ConfigError(f"config key {key}.type: unknown task type {kind!r} (expected one of {sorted(metrics.TASK_TYPES)})")
    if metric not in metrics.TASK_TYPES[kind]:
        raise ConfigError(
            f"config key {key}.metric: unknown metric {metric!r} for type {kind!r} "
            f"(expected one of {list(metrics.TASK_TYPES[kind])})"
        )
    for field in fields:
        path = suite[field]
        if path is None:
            if name not in embedded_names:
                raise ConfigError(
                    f"config key {key}.{field}: null means the embedded data, but the embedded world has no "
                    f"{name!r} (it has {', '.join(embedded_names)}); give a JSONL path"
                )
            continue
        # Train files are always instruction data; test files follow the suite's type.
        try:
            read_jsonl(path, multiple_choice=(field == "test" and kind == "multiple_choice"))
        except DataError as error:
            raise ConfigError(f"config key {key}.{field}: {error}") from None


def check_config(config: dict, check_files: bool = True) -> dict:
    """Schema, then meaning: task types and metrics, methods, the template, data files and model."""
    validate_schema(config)
    for name, task in config["tasks"].items():
        _check_suite(f"tasks.{name}", task, EMBEDDED_TASKS, name, ("train", "test") if check_files else ())
    for name, suite in config["versatility"].items():
        _check_suite(f"versatility.{name}", suite, EMBEDDED_SUITES, name, ("test",) if check_files else ())
    for name in config["methods"]:
        if name not in METHODS:
            raise ConfigError(f"config key methods.{name}: unknown method (registered: {', '.join(sorted(METHODS))})")
    try:
        config["prompt"]["template"].format(instruction="", input="")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"config key prompt.template: must be a format string using only {{instruction}} and {{input}} ({error!r})"
        ) from None
    world = config["embedded"]["world"]
    if world["min_list_len"] > world["max_list_len"]:
        raise ConfigError("config key embedded.world.min_list_len: must not exceed embedded.world.max_list_len")
    base = config["embedded"]["base"]
    if base["hidden"] % base["heads"]:
        raise ConfigError("config key embedded.base.heads: must divide embedded.base.hidden")
    if check_files and config["model"]["path"] is not None:
        from cofi.modeling import ModelError, check_model_dir  # transformers is slow to import

        try:
            check_model_dir(config["model"]["path"], config["model"]["trust_remote_code"])
        except ModelError as error:
            raise ConfigError(str(error)) from None
    return config


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        with path.open() as handle:
            config = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return config
