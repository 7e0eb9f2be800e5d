"""Supervised fine-tuning loop: response-only loss, AdamW, warm-up + cosine decay, accumulation.

Kept as one readable loop (rather than ``transformers.Trainer``) because the anti-forgetting
methods need to act between backward and step, where a plain loop is easiest to follow.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import get_cosine_schedule_with_warmup

from cofi.prompts import IGNORE_INDEX, encode_example


@dataclass
class TrainConfig:
    """Optimisation budget and schedule. ``steps`` counts optimizer steps."""

    lr: float = 1e-3
    steps: int = 300
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mask_prompt: bool = True
    max_len: int = 64
    seed: int = 0
    log_every: int = 25
    sam_rho: float = 0.0  # > 0: sharpness-aware minimisation with this radius (cofi.sam)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """From a run's params: training keys, and ``sam: {rho: ...}`` where the run uses SAM."""
        known = {f for f in cls.__dataclass_fields__}
        values = {**values, "sam_rho": (values.get("sam") or {}).get("rho", values.get("sam_rho", 0.0))}
        return cls(**{k: v for k, v in values.items() if k in known})


def tokenize_dataset(records, tokenizer, template: str, mask_prompt: bool, max_len: int) -> list[dict]:
    examples = [encode_example(tokenizer, r, template, mask_prompt, max_len) for r in records]
    usable = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"][1:])]
    if not usable:
        raise ValueError(f"no training example keeps a response token within max_len={max_len}")
    return usable


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of the batch."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def example_batches(examples: list[dict], batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Endless epochs, each a fresh seeded permutation, cut into lists of examples; a short last batch is dropped."""
    generator = torch.Generator().manual_seed(seed)
    per_epoch = max(1, len(examples) // batch_size)
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        if len(examples) < batch_size:  # tiny datasets: sample with repetition to fill a batch
            order = (order * math.ceil(batch_size / len(examples)))[:batch_size]
        for b in range(per_epoch):
            yield [examples[i] for i in order[b * batch_size : (b + 1) * batch_size]]


def batch_stream(examples: list[dict], batch_size: int, pad_id: int, seed: int) -> Iterator[dict]:
    """Collated batches of :func:`example_batches`."""
    for batch in example_batches(examples, batch_size, seed):
        yield collate(batch, pad_id)


def token_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled tokens, and their count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, int((targets != IGNORE_INDEX).sum())


def backward_pass(model, micro_batches: list[dict], n_tokens: int, penalties=()) -> tuple[float, float]:
    """Gradients of one step's objective: token-mean cross-entropy over the micro-batches, plus the
    penalties (once per step). Returns the cross-entropy and penalty values."""
    total = 0.0
    for batch in micro_batches:
        loss_sum, _ = token_loss_sum(model, batch)
        (loss_sum / n_tokens).backward()
        total += loss_sum.item()
    penalty = 0.0
    if penalties:
        term = sum(p() for p in penalties)
        term.backward()
        penalty = term.detach().item()
    return total / n_tokens, penalty


def train(model, examples: list[dict], cfg: TrainConfig, pad_id: int, curve_path: str | Path, log=print,
          hooks: tuple = (), penalties: tuple = (), batches: Iterator[dict] | None = None) -> dict:
    """Train the parameters that require grad; write a loss curve CSV; return a summary.

    ``hooks`` (e.g. :class:`cofi.softmask.SoftMask`) get ``attach(optimizer)`` once and
    ``after_backward()`` once per optimizer step, after accumulation (and SAM's second pass) and
    before clipping. ``penalties`` are callables whose scalar joins every step's objective.
    ``batches`` replaces the default seeded stream over ``examples`` (e.g. replay mixing).
    With ``cfg.sam_rho`` > 0 each step is a SAM step (:mod:`cofi.sam`): two passes on the same batch.
    """
    from cofi.sam import SAM

    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sam = SAM(params, cfg.sam_rho) if cfg.sam_rho > 0 else None
    for hook in hooks:
        hook.attach(optimizer)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * cfg.steps), cfg.steps)
    stream = batches if batches is not None else batch_stream(examples, cfg.batch_size, pad_id, cfg.seed)
    model.train()
    log(f"training {sum(p.numel() for p in params):,} parameters for {cfg.steps} steps: {asdict(cfg)}")
    started = time.perf_counter()
    with open(curve_path, "w", newline="") as handle:
        curve = csv.writer(handle)
        curve.writerow(["step", "loss", "penalty", "sam_loss", "lr", "tokens", "seconds"])
        for step in range(1, cfg.steps + 1):
            micro_batches = [next(stream) for _ in range(cfg.grad_accum)]
            # Normalise by the tokens of the whole accumulated batch, so accumulation matches one big batch.
            n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro_batches)
            loss, penalty = backward_pass(model, micro_batches, n_tokens, penalties)
            sam_loss = ""
            if sam is not None:  # second pass at w + ε, then back to w (cofi.sam)
                sam.ascend()
                optimizer.zero_grad(set_to_none=True)
                sam_loss = f"{backward_pass(model, micro_batches, n_tokens, penalties)[0]:.6f}"
                sam.restore()
            for hook in hooks:
                hook.after_backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            curve.writerow([step, f"{loss:.6f}", f"{penalty:.6g}", sam_loss, f"{lr:.6g}", n_tokens, f"{elapsed:.3f}"])
            if step % cfg.log_every == 0 or step == cfg.steps:
                extra = (f"  penalty {penalty:.4g}" if penalties else "") + (f"  loss at w+eps {sam_loss}" if sam else "")
                log(f"step {step}/{cfg.steps}  loss {loss:.4f}{extra}  lr {lr:.2e}  {elapsed:.1f}s")
    model.eval()
    return {"steps": cfg.steps, "seconds": time.perf_counter() - started, "final_loss": loss}
