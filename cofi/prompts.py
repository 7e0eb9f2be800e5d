"""Turning a record into token ids: prompt from a template, response, special tokens, loss mask."""

from __future__ import annotations

IGNORE_INDEX = -100  # label value the loss skips (prompt tokens when masking, padding)


def check_template(template: str) -> None:
    """A format string using only ``{instruction}`` and ``{input}``."""
    from cofi.errors import InputError

    try:
        template.format(instruction="", input="")
    except (KeyError, IndexError, ValueError) as error:
        raise InputError(f"must be a format string using only {{instruction}} and {{input}} ({error!r})") from None


def render_prompt(record: dict, template: str) -> str:
    return template.format(instruction=record["instruction"], input=record.get("input", ""))


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """BOS (when the tokenizer has one) + prompt tokens; no EOS, generation continues from here."""
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids


def prompt_lengths(tokenizer, prompts: list[str]) -> list[int]:
    """Token counts of :func:`encode_prompt` for many prompts at once (one batched tokenizer call)."""
    bos = 0 if tokenizer.bos_token_id is None else 1
    return [bos + len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]


def encode_response(tokenizer, response: str, eos: bool = True) -> list[int]:
    ids = tokenizer.encode(response, add_special_tokens=False)
    return ids + ([tokenizer.eos_token_id] if eos else [])


def encode_example(tokenizer, record: dict, template: str, mask_prompt: bool, max_len: int) -> dict:
    """Token ids and labels for supervised fine-tuning; prompt labels are ignored if ``mask_prompt``.

    Examples longer than ``max_len`` are cut from the right (the response end may be lost, as in
    most SFT code); :func:`cofi.train.tokenize_dataset` counts how many were cut.
    """
    prompt = encode_prompt(tokenizer, render_prompt(record, template))
    response = encode_response(tokenizer, record["output"])
    input_ids = (prompt + response)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt) if mask_prompt else list(prompt)) + response
    return {"input_ids": input_ids, "labels": labels[:max_len]}
