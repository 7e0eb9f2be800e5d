"""Verifiable instructions (IFEval): lm-evaluation-harness's checkers, used as they are.

An item of an ``instruction_following`` suite lists its checks as ``{"id": ..., "kwargs": {...}}``
with the ids of the harness's ``instructions_registry`` (``change_case:english_capital``, ...); a
response follows the item when every check passes (IFEval's prompt-level strict accuracy).
"""

from __future__ import annotations

import contextlib
import io
from functools import cache


@contextlib.contextmanager
def _no_downloads():
    """The harness's IFEval module fetches nltk's punkt tables when it is imported; cofi never reaches the
    network at run time, and none of the checks a cofi suite may use needs them (see :data:`USABLE`)."""
    import nltk

    download = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        yield
    finally:
        nltk.download = download


@cache
def registry() -> dict:
    with _no_downloads(), contextlib.redirect_stdout(io.StringIO()):  # it prints "Downloaded" regardless
        from lm_eval.tasks.ifeval import instructions_registry
    import langdetect

    langdetect.DetectorFactory.seed = 0  # the case checks detect the language: the same answer every run
    return instructions_registry.INSTRUCTION_DICT


# The checks that work offline (the sentence counters need nltk's punkt data, which cofi cannot fetch).
USABLE = ("change_case:english_capital", "change_case:english_lowercase", "startend:end_checker",
          "startend:quotation", "punctuation:no_comma", "detectable_format:number_bullet_lists",
          "detectable_format:json_format", "detectable_format:title", "length_constraints:number_words",
          "keywords:existence", "keywords:forbidden_words", "detectable_content:postscript",
          "detectable_format:number_highlighted_sections")


class InstructionError(ValueError):
    """An unknown or unusable check id, or kwargs its checker does not take."""


def _checker(check: dict):
    if check.get("id") not in USABLE:
        raise InstructionError(f"check id {check.get('id')!r} (expected one of {', '.join(USABLE)})")
    checker = registry()[check["id"]](check["id"])
    try:
        description = checker.build_description(**(check.get("kwargs") or {}))
    except TypeError as error:
        raise InstructionError(f"check {check['id']}: {error}") from None
    return checker, description


def describe(check: dict) -> str:
    """The instruction's own wording of the check (the harness's)."""
    return _checker(check)[1]


def follows(response: str, checks: list[dict]) -> bool:
    """Every check passes on ``response`` (an empty response follows nothing)."""
    if not response.strip():
        return False
    return all(_checker(check)[0].check_following(response) for check in checks)


def validate(checks, where: str) -> None:
    """``checks`` is a non-empty list of usable checks with kwargs their checkers take (for data reading)."""
    if not isinstance(checks, list) or not checks or not all(isinstance(c, dict) for c in checks):
        raise InstructionError(f"{where}: 'checks' must be a non-empty list of {{'id': ..., 'kwargs': {{...}}}}")
    for check in checks:
        try:
            _checker(check)
        except InstructionError as error:
            raise InstructionError(f"{where}: {error}") from None
