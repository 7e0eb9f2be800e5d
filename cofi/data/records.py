"""JSONL datasets: validation with file:line errors, then loading through Hugging Face ``datasets``.

Format (one JSON object per line, UTF-8): ``instruction`` (str), ``input`` (str, may be empty or
absent), ``output`` (str). Multiple-choice items carry ``choices`` (list of at least two str) and
``answer`` (the index of the right choice, or the right choice's text) and need no ``output``.
Instruction-following items carry ``checks`` (IFEval checks, :mod:`cofi.evaluation.instructions`); their
``output``, a response that passes, is optional.

A training or generation record may instead be a conversation: ``messages`` (a list of ``{"role", "content"}``,
roles system, user, assistant) or ShareGPT's ``conversations`` (``{"from", "value"}``, from system, human, gpt).
Both become ``messages`` at load, beside the ``instruction`` (the last user turn) and ``output`` (the last assistant
turn) that code reading single exchanges uses; :class:`cofi.data.prompts.Prompter` puts the loss on every assistant
turn.
"""

from __future__ import annotations

from cofi.errors import InputError

import json
from pathlib import Path


class DataError(InputError):
    """Bad data: the message names the file, the line and what was expected."""


SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
CONVERSATION_FIELDS = {"messages": ("role", "content"), "conversations": ("from", "value")}


def _conversation(record: dict, where: str, multiple_choice: bool, verifiable: bool) -> dict:
    """A ``messages`` or ShareGPT ``conversations`` record as ``messages`` (roles system, user, assistant) with
    ``instruction``/``output``: an optional system turn, then user and assistant turns in turn, the last an
    assistant's (the response a generation suite scores, the last the loss falls on)."""
    given = [field for field in CONVERSATION_FIELDS if field in record]
    if len(given) > 1:
        raise DataError(f"{where}: both 'messages' and 'conversations'; give one conversation per record")
    field = given[0]
    if multiple_choice or verifiable:
        raise DataError(f"{where}: {field!r}: conversations are training or generation data; a "
                        f"{'multiple-choice' if multiple_choice else 'instruction-following'} item needs "
                        f"{'instruction, choices, answer' if multiple_choice else 'instruction, checks'}")
    if clash := [key for key in ("instruction", "input", "output") if key in record]:
        raise DataError(f"{where}: {field!r} beside {', '.join(map(repr, clash))}; give a conversation or "
                        "instruction/input/output, not both")
    role_key, content_key = CONVERSATION_FIELDS[field]
    turns = record[field]
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: {field!r} must be a non-empty list of turns")
    messages = []
    for number, turn in enumerate(turns, start=1):
        at = f"{where}: {field}[{number - 1}]"
        if not isinstance(turn, dict) or not isinstance(turn.get(role_key), str) or not isinstance(
                turn.get(content_key), str):
            raise DataError(f"{at}: expected {{{role_key!r}: str, {content_key!r}: str}}, got {turn!r}")
        role = turn[role_key] if field == "messages" else SHAREGPT_ROLES.get(turn[role_key])
        if role not in ("system", "user", "assistant"):
            allowed = "system, user, assistant" if field == "messages" else ", ".join(SHAREGPT_ROLES)
            raise DataError(f"{at}: {role_key} {turn[role_key]!r} is not one of {allowed} (cofi trains on the "
                            "user's and the assistant's turns; tool turns are not supported)")
        messages.append({"role": role, "content": turn[content_key]})
    dialogue = messages[1:] if messages[0]["role"] == "system" else messages
    for number, turn in enumerate(dialogue):
        expected = "user" if number % 2 == 0 else "assistant"
        if turn["role"] != expected:
            position = number + len(messages) - len(dialogue)
            raise DataError(f"{where}: {field}[{position}] is a {turn['role']} turn where a{'n' * (expected[0] == 'a')} "
                            f"{expected} turn belongs (an optional system turn first, then user and assistant turns "
                            "in turn)")
    if not dialogue or dialogue[-1]["role"] != "assistant":
        raise DataError(f"{where}: {field!r} must end with an assistant turn (the response to learn or to score)")
    return {"instruction": dialogue[-2]["content"], "input": "", "output": dialogue[-1]["content"],
            "messages": messages}


def _check_record(record: object, where: str, multiple_choice: bool, verifiable: bool = False) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if any(field in record for field in CONVERSATION_FIELDS):
        return _conversation(record, where, multiple_choice, verifiable)
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
    if any("messages" in record for record in records):  # datasets takes its columns from the first record
        records = [{"messages": None} | record for record in records]
    # Validation normalised the records (input defaults to "", answer to an index); hand those to
    # datasets rather than re-reading the raw file, so both views agree.
    return datasets.Dataset.from_list(records)


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
