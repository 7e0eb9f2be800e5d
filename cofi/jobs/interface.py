"""A workflow job's interface, written once: its frozen dataclass.

Every field declared with :func:`option` (one line of help, its default if it has one, and a flag name
where the field's own reads worse) is at once a key of the job's JSON spec, a flag of its command and
a line of that command's help; the class docstring's first paragraph is the command's help. A rule passes
the whole job as one spec (``python -m cofi finetune --spec JSON``); flags set or override single keys,
for people and tests. ``--threads`` (commands of a :attr:`Job.computes` job) is the process's, not the
job's: it stays out of the spec, so running with fewer cores changes no job's parameters.

What a field's annotation makes of it:

- ``str``, ``int``, ``float``; ``bool`` (``--x`` / ``--no-x``); ``Literal`` (its values); ``X | None``;
- a dataclass (a JSON object, its keys checked by :func:`cofi.config.settings.from_dict`; a settings
  dataclass's values also against the types and bounds of its config section), or a class with
  ``from_spec``/``spec`` (a run);
- ``tuple[X, ...]``: several values after the flag (of dataclasses: a JSON list of objects);
- ``dict`` or ``list``: JSON.

A spec holds only the keys that differ from their defaults (:func:`spec_of`), so a new option left at its
default changes no rule's parameters and reruns nothing.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from cofi.config.settings import ComputeSettings, ModelSettings, fields_of, from_dict, non_default, schema_fragment
from cofi.errors import InputError


class JobSpecError(InputError):
    """A job spec or flag that does not fit its job; the message names the key (and flag)."""


def option(help: str, default=dataclasses.MISSING, *, flag: str | None = None):
    """A job field: ``help``, its ``default`` (none: required) and, where it reads better, its ``flag`` name."""
    metadata = {"job_help": help, "flag": flag}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Job(abc.ABC):
    """A workflow job: its options are the fields declared with :func:`option`; :meth:`execute` does the work."""

    computes: ClassVar[bool] = False  # loads torch and computes: the command takes --threads, pins CPU kernels
    log: typing.Callable = dataclasses.field(default=print, repr=False, compare=False)

    @abc.abstractmethod
    def execute(self):
        """Read the job's inputs, write its outputs."""

    @classmethod
    def device_of(cls, values: dict) -> str:
        """The device a job of these keys computes on, read without building the job (the job server asks it of
        every job before the job starts): a job that loads no model, the CPU."""
        return "cpu"


_DEVICE = next(f for f in dataclasses.fields(ComputeSettings) if f.name == "device")
Dtype = typing.get_type_hints(ModelSettings)["dtype"]


@dataclass(frozen=True, kw_only=True)
class LoadsModel(Job):
    """A job that loads a model: how (the config's model section)."""

    computes: ClassVar[bool] = True
    dtype: Dtype = option("weights dtype (model.dtype)", ModelSettings.dtype)
    trust_remote_code: bool = option("allow the model's own code (model.trust_remote_code)", False)


@dataclass(frozen=True, kw_only=True)
class OnDevice(LoadsModel):
    """A job that loads a model onto a device (the config's compute.device)."""

    device: str = option(_DEVICE.metadata["help"], _DEVICE.default)

    @classmethod
    def device_of(cls, values: dict) -> str:
        return str(values.get("device", _DEVICE.default))


# --- the fields and their kinds -------------------------------------------------------------------------------


def job_fields(cls) -> list[tuple[dataclasses.Field, object]]:
    """The option fields of a job class with their resolved annotations."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if "job_help" in f.metadata]


def flag_of(field: dataclasses.Field) -> str:
    return "--" + (field.metadata["flag"] or field.name.replace("_", "-"))


def _optional(annotation) -> tuple[object, bool]:
    """(the annotation without ``| None``, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return args[0], True
    return annotation, False


def _structured(kind) -> bool:
    """A dataclass, or a class that reads itself from a spec: given as a JSON object."""
    return dataclasses.is_dataclass(kind) or hasattr(kind, "from_spec")


def _json_kind(kind) -> bool:
    return kind in (dict, list) or typing.get_origin(kind) in (dict, list) or _structured(kind)


def json_value(text: str):
    """argparse type of the flags that carry JSON: bad JSON is a usage error naming the flag."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg} at column {error.colno}): {text!r}") from None


json_value.__name__ = "JSON"  # argparse names the type in its message

# ``--spec -``: the spec is read from standard input. A job whose spec lists every run's files (the tables, the
# claims) outgrows what Linux lets one argument hold (128 KiB) in a large study; a shell builtin pipes it instead.
SPEC_ON_STDIN = "-"


def spec_value(text: str):
    """argparse type of --spec: JSON, or ``-`` (kept as is: standard input is read once, by the job itself)."""
    return text if text == SPEC_ON_STDIN else json_value(text)


spec_value.__name__ = "JSON"


def _spec_from_stdin() -> dict:
    # A fresh reader on descriptor 0: a job forked by the job server gets its client's stdin there.
    with open(0, encoding="utf-8", closefd=False) as stdin:
        text = stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise JobSpecError(f"--spec - (standard input): not valid JSON ({error.msg} at column {error.colno})") from None


# --- the command line -------------------------------------------------------------------------------------------


def add_job_command(subparsers, command: str, cls) -> argparse.ArgumentParser:
    """The command of job class ``cls``: --spec, a flag per option field, --threads where it computes."""
    summary = " ".join((cls.__doc__ or command).strip().split("\n\n")[0].split())
    parser = subparsers.add_parser(command, help=summary, description=summary + " Flags set or override keys of "
                                   "--spec; the rules pass the whole job as --spec.")
    parser.add_argument("--spec", type=spec_value, default={}, help="JSON object of the job's keys: the name after "
                        "each flag below; - reads it from standard input")
    for field, annotation in job_fields(cls):
        kind, _ = _optional(annotation)
        default = _default(field)
        text = field.metadata["job_help"] + (" (required)" if default is dataclasses.MISSING
                                            else f" (default: {json.dumps(_plain(default))})")
        extra: dict = {}
        if kind is bool:
            extra["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple and not _structured(typing.get_args(kind)[0]):
            extra.update(nargs="*", type=typing.get_args(kind)[0])
        elif typing.get_origin(kind) is tuple or _json_kind(kind):
            extra["type"] = json_value
        elif typing.get_origin(kind) is typing.Literal:
            extra["choices"] = typing.get_args(kind)
        else:
            extra["type"] = kind
        if "action" not in extra and "choices" not in extra:
            extra["metavar"] = field.name
        parser.add_argument(flag_of(field), dest=field.name, default=argparse.SUPPRESS, help=text, **extra)
    if cls.computes:
        parser.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads; not part of "
                            "the job)")
    return parser


def device_of(argv: list[str]) -> str:
    """The device the job of command line ``argv`` (a command and its flags) computes on: "auto" where the command
    is not a job or its flags cannot be read (the job itself then says what is wrong). Parses only that command's
    flags and builds no job, so that asking costs little."""
    import contextlib
    import io

    from cofi.jobs import JOBS, job_class

    if not argv or argv[0] not in JOBS:
        return "auto"
    cls = job_class(argv[0])
    commands = argparse.ArgumentParser(add_help=False).add_subparsers(dest="command")
    add_job_command(commands, argv[0], cls)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = commands._name_parser_map[argv[0]].parse_args(argv[1:])
        if args.spec == SPEC_ON_STDIN:  # the job's to read, not the asker's: its device is its default one
            return cls.device_of({})
        values = values_of(args, cls)
    except (SystemExit, JobSpecError):
        return "auto"
    return cls.device_of(values)


def values_of(args: argparse.Namespace, cls) -> dict:
    """The job's keys from parsed arguments: --spec (read from standard input where it is -), then the flags given."""
    spec = _spec_from_stdin() if args.spec == SPEC_ON_STDIN else args.spec
    if not isinstance(spec, dict):
        raise JobSpecError(f"--spec: expected a JSON object, got {type(spec).__name__}")
    given = {field.name: getattr(args, field.name) for field, _ in job_fields(cls) if hasattr(args, field.name)}
    return {**spec, **given}


# --- spec <-> job ----------------------------------------------------------------------------------------------


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _plain(value):
    """A field value as JSON: dataclasses by their keys (settings: those off their defaults), runs by their spec."""
    if hasattr(value, "spec") and hasattr(type(value), "from_spec"):
        return value.spec()
    if dataclasses.is_dataclass(value):
        if _is_settings(type(value)):
            return non_default(value)
        return {k: _plain(v) for k, v in ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(kind, value, where: str):
    """``value`` (JSON) as annotation ``kind`` says; a wrong type is an error naming ``where``."""
    kind, optional = _optional(kind)
    if value is None:
        if optional:
            return None
        raise JobSpecError(f"{where}: null where a value is needed")
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise JobSpecError(f"{where}: expected a list, got {json.dumps(value)}")
        return tuple(_typed(typing.get_args(kind)[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise JobSpecError(f"{where}: expected one of {', '.join(map(repr, typing.get_args(kind)))}, got {value!r}")
        return value
    if isinstance(kind, type) and _structured(kind) and isinstance(value, kind):
        return value  # built already (a rule may pass the experiment's settings as they are)
    if hasattr(kind, "from_spec"):
        if not isinstance(value, dict):
            raise JobSpecError(f"{where}: expected a JSON object, got {json.dumps(value)}")
        try:
            return kind.from_spec(value)
        except KeyError as error:
            raise JobSpecError(f"{where}: missing key {error}") from None
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise JobSpecError(f"{where}: expected a JSON object, got {json.dumps(value)}")
        if _is_settings(kind):  # the types and bounds the config's schema holds them to
            _check_settings(kind, value, where)
        required = [f.name for f in dataclasses.fields(kind)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing := [name for name in required if name not in value]:
            raise JobSpecError(f"{where}: missing key(s) {missing}")
        return from_dict(kind, value, where)
    expected = {dict: dict, list: list, str: str, bool: bool, int: int, float: (int, float)}.get(origin or kind)
    if expected is not None and (not isinstance(value, expected) or (kind is not bool and isinstance(value, bool))):
        raise JobSpecError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {json.dumps(value)}")
    return float(value) if kind is float else value


def _is_settings(kind) -> bool:
    """A settings dataclass (:mod:`cofi.config.settings`): every key has a default, help and a schema type."""
    return {f.name for f, _ in fields_of(kind)} == {f.name for f in dataclasses.fields(kind)}


@functools.cache
def _validator(kind):
    """One validator per settings class: every rule's spec is checked at start-up, each job's anew."""
    import jsonschema

    return jsonschema.Draft202012Validator(schema_fragment(kind, defaults=False))


def _check_settings(kind, value: dict, where: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(value))
    if error is not None:
        at = ".".join(map(str, error.absolute_path))
        raise JobSpecError(f"{where}{' ' + at if at else ''}: {error.message}")


def job_from(cls, values: dict, where: str, **extra):
    """The job of class ``cls`` from its keys (JSON values); ``where`` starts every error message (e.g. the
    command). ``extra``: fields outside the interface (its log)."""
    fields = {field.name: (field, annotation) for field, annotation in job_fields(cls)}
    if unknown := sorted(set(values) - set(fields)):
        raise JobSpecError(f"{where}: unknown key(s) {unknown} (known: {', '.join(sorted(fields))})")
    if missing := [f"{name} ({flag_of(f)})" for name, (f, _) in fields.items()
                   if _default(f) is dataclasses.MISSING and name not in values]:
        raise JobSpecError(f"{where}: missing {', '.join(missing)}")
    typed = {name: _typed(fields[name][1], value, f"{where} key {name} ({flag_of(fields[name][0])})")
             for name, value in values.items()}
    return cls(**typed, **extra)


def spec_of(job) -> dict:
    """The job's spec: its keys that differ from their defaults, as JSON values."""
    spec = {}
    for field, _ in job_fields(type(job)):
        value = getattr(job, field.name)
        if value != _default(field):
            spec[field.name] = _plain(value)
    return spec


def spec_json(cls, values: dict, where: str) -> str:
    """What a rule passes as --spec: the job built (so a bad key stops the workflow before any job), canonical
    JSON of its spec (the key order of a config file never reruns anything)."""
    return json.dumps(spec_of(job_from(cls, values, where)), sort_keys=True)
