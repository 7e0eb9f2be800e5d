"""The config schema: loading it (with the sections whose keys live in settings dataclasses filled in),
filling its defaults into a config, expanding ``~`` in paths, and validating, with messages that name
the config key.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from cofi.errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class SchemaError(InputError):
    """A config that breaks the schema; the message names the key and what was expected."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The config schema, with the sections whose keys live in a settings dataclass filled in from it."""
    with open(path) as handle:
        return _fill_settings(yaml.safe_load(handle))


def _python_value(dotted: str):
    """The object a dotted name (``module.NAME``) names: a settings class, or a default with its home in Python."""
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _fill_settings(node):
    """``{$settings: cls, ...}`` becomes cls's schema object (the node's other keys kept); in a
    ``properties`` mapping, ``$settings: cls`` adds cls's keys with their defaults and
    ``$settings-as-run-keys: cls`` adds them without (a run's own values), a sweepable key also
    taking a list; ``{$value: module.NAME}`` is that Python value (a default whose home is in code)."""
    from cofi.config.settings import schema_fragment, sweepable

    if isinstance(node, list):
        return [_fill_settings(item) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"$value"}:
        return _python_value(node["$value"])  # JSON-like (lists, not tuples): fill_defaults copies it
    if "$settings" in node and "properties" not in node:
        extra = {k: _fill_settings(v) for k, v in node.items() if k != "$settings"}
        return schema_fragment(_python_value(node["$settings"])) | extra
    node = dict(node)
    if isinstance(node.get("properties"), dict):
        properties = dict(node["properties"])
        if "$settings" in properties:
            cls = _python_value(properties.pop("$settings"))
            properties.update(schema_fragment(cls)["properties"])
        if "$settings-as-run-keys" in properties:
            cls = _python_value(properties.pop("$settings-as-run-keys"))
            for key, prop in schema_fragment(cls, defaults=False)["properties"].items():
                if key in sweepable(cls):
                    item = {k: v for k, v in prop.items() if k != "description"}
                    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]  # null already in
                    prop = {**prop, "type": [*kinds, "array"], "minItems": 1, "items": item,
                            "description": prop["description"] + "; a list gives a run per value and a tuned row"}
                properties[key] = prop
        node["properties"] = {key: _fill_settings(value) for key, value in properties.items()}
    return {key: value if key == "properties" else _fill_settings(value) for key, value in node.items()}


def resolve_ref(schema: dict, root: dict) -> dict:
    """A schema node with its ``$ref`` (``#/definitions/x``) merged in, the node's own keys winning."""
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def fill_defaults(instance, schema: dict, root: dict | None = None):
    """Insert schema defaults for missing keys, recursively (in place); returns ``instance``."""
    root = root or schema
    schema = resolve_ref(schema, root)
    if not isinstance(instance, dict):
        return instance
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = resolve_ref(sub, root)
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
    schema = resolve_ref(schema, root)
    if not isinstance(instance, dict):
        return instance
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, value in instance.items():
        sub = properties.get(key, extra if isinstance(extra, dict) else None)
        if sub is None:
            continue
        sub = resolve_ref(sub, root)
        if sub.get("format") == "path" and isinstance(value, str):
            instance[key] = os.path.expanduser(value)
        else:
            expand_user_paths(value, sub, root)
    return instance




def validate_schema(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults (and expand ``~`` in paths), then validate; raise :class:`SchemaError` on the first error."""
    schema = schema or load_schema()
    fill_defaults(config, schema)
    expand_user_paths(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(f"config key {key}: {schema_message(error)}")
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
