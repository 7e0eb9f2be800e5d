"""Fine-tuning methods, registered by name.

A configured run (``runs.<run>`` in the config; :mod:`cofi.config.experiment` resolves it) names a
registered method (default: the run's own name) with the method's own keys. Adding a method: one
module here (a :class:`~cofi.methods.base.Method` subclass, with the :class:`~cofi.methods.base.Need`
of any file it reads) and one entry in :data:`METHODS`.
"""

from __future__ import annotations

from cofi.methods.base import CheckContext, Extension, Inputs, Method, MethodError, Need, Setup
from cofi.methods.asft import ASFT
from cofi.methods.cofitune.method import CoFiTune
from cofi.methods.dft import DFT
from cofi.methods.full import Full
from cofi.methods.lora import LoRA
from cofi.methods.penalty import L1, L2
from cofi.methods.cofitune.coarse import RegionMethod
from cofi.methods.replay import Replay
from cofi.methods.vsoftmask import VSoftMask
from cofi.methods.wiseft import WiseFT

METHODS: dict[str, Method] = {m.name: m for m in (
    Full(), RegionMethod(), CoFiTune(), VSoftMask(), LoRA(), L1(), L2(), WiseFT(), Replay(), DFT(), ASFT(),
)}



def expand_method_paths(run: str, entry: dict) -> None:
    """``~`` at the start of a method key's path value (``format: path``) becomes the home directory, in place: what
    the schema's fill does for its own keys, done before the checks read the entry."""
    import os

    method = METHODS.get(entry.get("method", run))
    for field, value in entry.items():
        if method and isinstance(value, str) and method.keys.get(field, {}).get("format") == "path":
            entry[field] = os.path.expanduser(value)


def check_run_entry(key: str, run: str, entry: dict, option_keys: tuple[str, ...]) -> None:
    """A configured run names a registered method and gives only keys it takes, with valid values
    (lists only where a key sweeps). ``option_keys`` are what the config schema checks (training keys,
    sam, equal_compute). Reads ``entry``, never changes it (:func:`expand_method_paths` does, before)."""
    import jsonschema

    from cofi.config.schema import schema_message

    name = entry.get("method", run)
    if name not in METHODS:
        raise MethodError(f"config key {key}: unknown method {name!r} (registered: {', '.join(sorted(METHODS))})")
    method = METHODS[name]
    for field, value in list(entry.items()):
        if field == "method" or field in option_keys:
            continue
        if field not in method.keys:
            takers = sorted(m for m, spec in METHODS.items() if field in spec.keys)
            where = f"only {', '.join(takers)}" if takers else f"{name!r} takes {', '.join(method.keys) or 'no keys of its own'}"
            raise MethodError(f"config key {key}.{field}: method {name!r} does not take it ({where})")
        swept = field in method.sweep and isinstance(value, list)
        if swept and not value:
            raise MethodError(f"config key {key}.{field}: an empty list (give one value, or a list of values)")
        schema = {k: v for k, v in method.keys[field].items() if k not in ("default", "description")}
        for item in value if swept else [value]:
            error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(item))
            if error is not None:
                raise MethodError(f"config key {key}.{field}: {schema_message(error)}")
    if not method.trains:
        if given := [k for k in option_keys if k in entry]:
            raise MethodError(f"config key {key}.{given[0]}: method {name!r} does not train (set it on the run it builds on)")
    if entry.get("sam") and entry.get("equal_compute"):
        raise MethodError(f"config key {key}.equal_compute: doubles a plain optimizer's steps to match SAM's two passes; "
                          "this run uses SAM itself")


__all__ = ["METHODS", "check_run_entry", "expand_method_paths", "CheckContext", "Extension", "Inputs", "Method", "MethodError", "Need", "Setup"]
