"""JSONL datasets: validation with file:line errors, then loading through Hugging Face ``datasets``.

Format (one JSON object per line, UTF-8): ``instruction`` (str), ``input`` (str, may be empty or
absent), ``output`` (str). Multiple-choice items carry ``choices`` (list of at least two str) and
``answer`` (the index of the right choice, or the right choice's text) and need no ``output``.
Instruction-following items carry ``checks`` (IFEval checks, :mod:`cofi.evaluation.instructions`); their
``output``, a response that passes, is optional.
"""

from __future__ import annotations

from cofi.errors import InputError

import json
from pathlib import Path


class DataError(InputError):
    """Bad data: the message names the file, the line and what was expected."""


def _check_record(record: object, where: str, multiple_choice: bool, verifiable: bool = False) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    required = ("instruction", "checks") if verifiable else ("instruction",) if multiple_choice else ("instruction", "output")
    for field in required:
        if field not in record:
            expected = ("instruction, checks" if verifiable else "instruction, choices, answer" if multiple_choice
                        else "instruction, input, output")
            raise DataError(f"{where}: missing field {field!r} (need {expected})")
    for field in ("instruction", "input", "output"):
        if field in record and not isinstance(record[field], str):
            raise DataError(f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}")
    if verifiable:
        from cofi.evaluation.instructions import InstructionError, validate

        try:
            validate(record["checks"], where)
        except InstructionError as error:
            raise DataError(str(error)) from None
        return {"instruction": record["instruction"], "input": record.get("input", ""),
                "output": record.get("output", ""), "checks": record["checks"]}
    if not multiple_choice:
        return {"instruction": record["instruction"], "input": record.get("input", ""), "output": record["output"]}
    choices, answer = record.get("choices"), record.get("answer")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: multiple-choice item needs 'choices', a list of at least two strings")
    if isinstance(answer, str) and answer in choices:
        answer = choices.index(answer)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(
            f"{where}: 'answer' must be an index into 'choices' (0..{len(choices) - 1}) or one of the "
            f"choices, got {answer!r}"
        )
    if "output" in record and record["output"] != choices[answer]:
        raise DataError(f"{where}: 'output' {record['output']!r} is not the answer's choice {choices[answer]!r} "
                        "(a multiple-choice item needs no output; drop it or make it agree)")
    return {
        "instruction": record["instruction"],
        "input": record.get("input", ""),
        "output": choices[answer],
        "choices": choices,
        "answer": answer,
    }


class _DuplicateKey(Exception):
    pass


def _refuse_duplicate_keys(pairs: list[tuple]) -> dict:
    """``json.loads`` keeps the last of repeated keys silently; a repeat in data is a mistake to report."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _lines(path: Path):
    """(line number, text) of a UTF-8 file (a byte-order mark allowed), with the byte offset of bad bytes."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                bad = offset + error.start
                raise DataError(f"{path}:{number}: byte {bad} (0x{raw[error.start]:02x}) is not valid UTF-8 "
                                "(expected UTF-8 text; convert the file, e.g. with iconv -t utf-8)") from None
            offset += len(raw)
            yield number, text


def read_jsonl(path: str | Path, *, multiple_choice: bool = False, verifiable: bool = False) -> list[dict]:
    """Read and validate a JSONL file; raise :class:`DataError` naming ``path:line`` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file does not exist")
    records = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})") from None
        except _DuplicateKey as error:
            raise DataError(f"{path}:{number}: duplicate key {error.args[0]!r} in one JSON object") from None
        records.append(_check_record(record, f"{path}:{number}", multiple_choice, verifiable))
    if not records:
        raise DataError(f"{path}: the dataset is empty (expected at least one JSON object per line)")
    return records


def load_records(path: str | Path, *, multiple_choice: bool = False):
    """Validate ``path``, then load it with ``datasets`` (the same path a user's JSONL takes)."""
    import datasets  # slow to import; reading a config only validates

    records = read_jsonl(path, multiple_choice=multiple_choice)
    # Validation normalised the records (input defaults to "", answer to an index); hand those to
    # datasets rather than re-reading the raw file, so both views agree.
    return datasets.Dataset.from_list(records)


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
