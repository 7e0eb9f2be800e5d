"""Forgetting as it happens: KL(π₀ ‖ π) on the task's held-out prompts, and the change in cross-entropy on a
versatility sample, measured every ``training.kl_every`` steps (``kl`` and ``vers_ce_delta`` in ``loss.csv``).

The KL is the forward KL from the model the run started from (π₀, the base model: every method here starts
from it; LoRA's adapters start at zero) to the model being trained, at each response token of the task's
reference responses (teacher-forced, the tokens the loss would see), averaged over those tokens:
Σ_v π₀(v) (log π₀(v) − log π(v)). π₀'s log-probabilities are computed once, by the model itself before its first
step, and kept on the CPU (response tokens × vocabulary × 4 bytes): no second model is loaded, sharded or not. A
checkpointed run stores them beside its checkpoints, so a resumed run compares with the same π₀.

``training.max_kl`` makes the KL a budget: the trained weights are copied to the CPU at every measurement under it,
and the run stops at the first measurement over it, with the copy put back.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cofi.data.prompts import IGNORE_INDEX
from cofi.training import distributed
from cofi.training.sharding import local

REFERENCE_FILE = "forgetting_reference.safetensors"


def reference_file(directory) -> Path:
    """Where this process stores its reference (each process measures its own rows of each batch)."""
    name = REFERENCE_FILE if not distributed.active() else f"rank{distributed.rank()}_{REFERENCE_FILE}"
    return Path(directory) / name


@dataclass
class ForgettingProbe:
    """The two fixed samples (collated batches) and how often they are measured."""

    task_batches: list[dict]
    vers_batches: list[dict]
    every: int
    max_kl: float | None = None


def _labelled(batch: dict) -> tuple[dict, torch.Tensor]:
    """This process's share of ``batch`` and the mask of its positions whose next token is labelled."""
    batch = distributed.shard(batch)
    return batch, batch["labels"][:, 1:] != IGNORE_INDEX


def _log_probs(model, batch: dict, mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the vocabulary at the labelled positions, float32: (positions, vocabulary)."""
    device = local(next(model.parameters())).device
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
    return F.log_softmax(logits[:, :-1][mask.to(device)].float(), dim=-1)


def _mean(model, terms) -> float:
    """Σ value / Σ count of ``terms`` ((value, count) pairs) over every process's share."""
    device = local(next(model.parameters())).device
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # one reduction, on the device the backend serves
    for value, count in terms:
        sums[0] += value
        sums[1] += count
    total, count = distributed.summed(sums).tolist()
    return total / count if count else float("nan")  # nothing to measure on (no versatility file with references)


def _cross_entropy(model, batches: list[dict]) -> float:
    """Mean cross-entropy per labelled token over ``batches``."""
    def terms():
        for batch in batches:
            batch, mask = _labelled(batch)
            log_probs = _log_probs(model, batch, mask)
            targets = batch["labels"][:, 1:][mask].to(log_probs.device)
            yield -log_probs.gather(1, targets[:, None]).double().sum(), int(mask.sum())

    return _mean(model, terms())


class Monitor:
    """A run's measurements against π₀; :meth:`reference` must run before the first step (or load the stored one)."""

    def __init__(self, probe: ForgettingProbe, model, autocast):
        self.probe, self.model, self.autocast = probe, model, autocast
        self.base_log_probs: list[torch.Tensor] = []
        self.base_vers_ce = float("nan")
        self.kept: list[torch.Tensor] | None = None  # the trained weights at the last measurement under max_kl
        self.kept_step: int | None = None
        self.seconds = 0.0
        self.measurements = 0

    @torch.no_grad()
    def reference(self, stored: Path | None = None, step: int = 0) -> None:
        """π₀'s log-probabilities and versatility cross-entropy: read from ``stored`` where it exists (a resumed run
        at ``step``), else computed now (and written there, where given). Under a budget, the weights now are the
        first kept."""
        from safetensors.torch import load_file, save_file

        if stored is not None and stored.is_file():
            tensors = load_file(stored)
            self.base_log_probs = [tensors[f"task{i}"] for i in range(len(self.probe.task_batches))]
            self.base_vers_ce = float(tensors["vers_ce"])
        else:
            with self._evaluating():
                self.base_log_probs = [_log_probs(self.model, *_labelled(b)).cpu() for b in self.probe.task_batches]
                self.base_vers_ce = _cross_entropy(self.model, self.probe.vers_batches)
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                save_file({**{f"task{i}": t.contiguous() for i, t in enumerate(self.base_log_probs)},
                           "vers_ce": torch.tensor(self.base_vers_ce)}, stored)
        if self.probe.max_kl is not None:
            self._keep(step)

    @contextmanager
    def _evaluating(self):
        """Eval mode (no dropout) and the run's autocast while measuring; train mode again after."""
        self.model.eval()
        try:
            with self.autocast():
                yield
        finally:
            self.model.train()

    def due(self, step: int, last: int) -> bool:
        return self.probe.every > 0 and (step % self.probe.every == 0 or step == last)

    @torch.no_grad()
    def measure(self, step: int) -> dict:
        """``{"kl", "vers_ce_delta"}`` of the model now; under a budget, the weights kept or put back."""
        import time

        started = time.perf_counter()

        def divergences():
            for batch, base in zip(self.probe.task_batches, self.base_log_probs):
                batch, mask = _labelled(batch)
                now = _log_probs(self.model, batch, mask)
                base = base.to(now.device)
                yield (base.exp() * (base - now)).double().sum(), int(mask.sum())

        with self._evaluating():
            kl = _mean(self.model, divergences())
            vers = _cross_entropy(self.model, self.probe.vers_batches) - self.base_vers_ce
        found = {"kl": kl, "vers_ce_delta": vers}
        if self.probe.max_kl is not None:
            if kl > self.probe.max_kl:
                self._restore()
                found["over_budget"] = True
            else:
                self._keep(step)
        self.seconds += time.perf_counter() - started
        self.measurements += 1
        return found

    def _trained(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _keep(self, step: int) -> None:
        self.kept, self.kept_step = [local(p.detach()).to("cpu", copy=True) for p in self._trained()], step

    def _restore(self) -> None:
        for parameter, kept in zip(self._trained(), self.kept):
            weights = local(parameter.detach())  # shares the parameter's storage
            weights.copy_(kept.to(weights.device))
