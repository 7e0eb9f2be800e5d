"""The data cofi makes itself where a config's suite paths are null: the symbolic world (for the
embedded toy model) or the natural-language chat suites (for a real chat model), chosen by
``embedded.suites``. Each is a module with the same face: ``SPLITS`` (the files it writes),
``TASK_TYPES`` and ``SUITE_TYPES`` (what each of its suites is), ``FITS_EMBEDDED_MODEL``, a settings
dataclass ``Spec`` (its config section, ``embedded.<kind>``) and ``build(spec)``."""

from __future__ import annotations

import importlib

KINDS = {"world": "cofi.data.world", "chat": "cofi.data.chat_suites"}


def suites_module(kind: str):
    return importlib.import_module(KINDS[kind])


def spec_of(kind: str, values: dict):
    """The kind's settings from its config section (``embedded.world`` or ``embedded.chat``)."""
    from cofi.config.settings import from_dict

    return from_dict(suites_module(kind).Spec, values, f"embedded.{kind}")
