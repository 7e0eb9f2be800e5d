"""Evaluation's torch side: batched greedy generation and the log-likelihood of each choice
(:mod:`cofi.evaluation.tasks` turns them into scores)."""

from __future__ import annotations

import sys

import torch


def in_chunks(count: int, batch_size: int, run) -> None:
    """``run(start, stop)`` over [0, count) in chunks of ``batch_size``. Where a chunk runs out of GPU memory it is
    run again at half the size, and the rest keeps the smaller size (down to one item; then the error stands)."""
    start = 0
    while start < count:
        stop = min(count, start + batch_size)
        try:
            run(start, stop)
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"out of GPU memory at a batch of {stop - start}: going on with batches of {batch_size}",
                  file=sys.stderr, flush=True)
            continue
        start = stop


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, width - len(s) :] = torch.tensor(s)
        mask[row, width - len(s) :] = 1
    return ids, mask


@torch.no_grad()
def generate(model, prompter, records: list[dict], batch_size: int, max_new_tokens: int,
             options: dict | None = None) -> list[str]:
    """Continuations of the records' prompts, batched with left padding (prompts grouped by length to pad
    less). Decoding follows the model's generation config with ``options`` over it (greedy unless they
    say otherwise); generation stops at the response's end token (:attr:`cofi.data.prompts.Prompter.stop_ids`)."""
    from transformers import GenerationConfig

    tokenizer = prompter.tokenizer
    options = dict(options or {})
    torch.manual_seed(options.pop("seed", 0))  # only sampling draws from it
    settings = {**model.generation_config.to_diff_dict(), "do_sample": False, **options,
                "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": prompter.stop_ids}
    if not settings["do_sample"]:  # greedy: sampling knobs of the model's config would only warn
        settings = {k: v for k, v in settings.items() if k not in ("temperature", "top_p", "top_k", "min_p")}
    config = GenerationConfig(**settings)
    encoded = [prompter.prompt_ids(r) for r in records]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(records)

    def run(start: int, stop: int) -> None:
        chunk = order[start:stop]
        ids, mask = _left_pad([encoded[i] for i in chunk], tokenizer.pad_token_id)
        ids, mask = ids.to(model.device), mask.to(model.device)
        generated = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        for row, i in enumerate(chunk):
            outputs[i] = tokenizer.decode(generated[row, ids.shape[1] :], skip_special_tokens=True).strip()

    in_chunks(len(order), batch_size, run)
    return outputs


@torch.no_grad()
def choice_loglikelihoods(model, prompter, records: list[dict], batch_size: int):
    """Summed log-probability of each choice's tokens after its prompt: one list per item."""
    tokenizer = prompter.tokenizer
    pairs = []  # (item, prompt ids, choice ids)
    for item, record in enumerate(records):
        prompt_ids = prompter.prompt_ids(record)
        pairs += [(item, prompt_ids, prompter.response_ids(option, end=False)) for option in record["choices"]]
    scores: list[list[float]] = [[] for _ in records]

    def run(start: int, stop: int) -> None:
        chunk = pairs[start:stop]
        width = max(len(p) + len(c) for _, p, c in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (_, p, c) in enumerate(chunk):
            ids[row, : len(p) + len(c)] = torch.tensor(p + c)
            mask[row, : len(p) + len(c)] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for row, (item, p, c) in enumerate(chunk):
            positions = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            scores[item].append(logprobs[row, positions, torch.tensor(c)].sum().item())

    in_chunks(len(pairs), batch_size, run)
    return scores
