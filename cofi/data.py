"""JSONL datasets: validation with file:line errors, then loading through Hugging Face ``datasets``.

Format (one JSON object per line): ``instruction`` (str), ``input`` (str, may be empty or absent),
``output`` (str). Multiple-choice items also carry ``choices`` (list of at least two str) and
``answer`` (the index of the right choice, or the right choice's text).
"""

from __future__ import annotations

from cofi.errors import InputError

import json
from pathlib import Path


class DataError(InputError):
    """Bad data: the message names the file, the line and what was expected."""


def _check_record(record: object, where: str, multiple_choice: bool) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for field in ("instruction", "output"):
        if field not in record:
            raise DataError(f"{where}: missing field {field!r} (need instruction, input, output)")
    for field in ("instruction", "input", "output"):
        if field in record and not isinstance(record[field], str):
            raise DataError(f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}")
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
    return {
        "instruction": record["instruction"],
        "input": record.get("input", ""),
        "output": choices[answer],
        "choices": choices,
        "answer": answer,
    }


def read_jsonl(path: str | Path, *, multiple_choice: bool = False) -> list[dict]:
    """Read and validate a JSONL file; raise :class:`DataError` naming ``path:line`` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file does not exist")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})") from None
            records.append(_check_record(record, f"{path}:{number}", multiple_choice))
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
