"""Evaluation's torch side: batched greedy generation and the log-likelihood of each choice
(:mod:`cofi.tasks` turns them into scores)."""

from __future__ import annotations

import torch

from cofi.prompts import encode_prompt, encode_response


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, width - len(s) :] = torch.tensor(s)
        mask[row, width - len(s) :] = 1
    return ids, mask


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    """Greedy continuations, batched with left padding; prompts are grouped by length to pad less."""
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = _left_pad([encoded[i] for i in chunk], tokenizer.pad_token_id)
        ids, mask = ids.to(model.device), mask.to(model.device)
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row, i in enumerate(chunk):
            outputs[i] = tokenizer.decode(generated[row, ids.shape[1] :], skip_special_tokens=True).strip()
    return outputs


@torch.no_grad()
def choice_loglikelihoods(model, tokenizer, prompts: list[str], choices: list[list[str]], batch_size: int):
    """Summed log-probability of each choice's tokens after its prompt: one list per item."""
    pairs = []  # (item, prompt ids, choice ids)
    for item, (prompt, options) in enumerate(zip(prompts, choices)):
        prompt_ids = encode_prompt(tokenizer, prompt)
        pairs += [(item, prompt_ids, encode_response(tokenizer, option, eos=False)) for option in options]
    scores: list[list[float]] = [[] for _ in prompts]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
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
    return scores
