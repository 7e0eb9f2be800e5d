"""ASFT (Anchored SFT, Zhu et al. 2025): DFT's probability-weighted loss plus λ times a KL anchor to the base
model at every response token, KL(π_θ ‖ π₀) = Σ_v π_θ(v) (log π_θ(v) − log π₀(v)): DFT drifts, the anchor holds
the model's distribution near where it started.

π₀ is a frozen copy of the model taken before training (one more model in memory, in the weights' dtype; the plan
counts it as a weight copy), run without gradients on each micro-batch. One process only: a copy sharded alike is
not wired into the sharded job, which refuses the method.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cofi.config.settings import setting
from cofi.data.prompts import IGNORE_INDEX
from cofi.methods.base import Extension, Method, MethodError, Setup, train_everything
from cofi.methods.dft import dft_loss


@dataclass(frozen=True)
class ASFTConfig:
    lambda_: float = setting(0.1, "weight λ of the KL anchor to the base model, per response token", sweep=True,
                             minimum=0)  # the config key `lambda`


class Anchored(Extension):
    """DFT's loss plus λ·KL(π_θ ‖ π₀) summed over the labelled positions (normalised with the loss, per token)."""

    def __init__(self, reference, weight: float):
        self.reference, self.weight = reference, weight

    def token_loss(self, logits, targets, batch):
        with torch.no_grad():
            base = self.reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labelled = batch["labels"][:, 1:] != IGNORE_INDEX
            base = F.log_softmax(base[:, :-1][labelled].to(logits.dtype), dim=-1)
        log_probs = F.log_softmax(logits, dim=-1)
        anchor = (log_probs.exp() * (log_probs - base)).sum()
        return dft_loss(logits, targets) + self.weight * anchor


class ASFT(Method):
    name = "asft"
    description = "DFT plus λ·KL(model ‖ base) per response token, against a frozen copy of the base model: ASFT"
    config = ASFTConfig

    def weight_copies(self, params):
        return 1  # the frozen base model beside the trained one

    def setup(self, model, run, inputs):
        from cofi.training import distributed

        if distributed.active():
            raise MethodError("method asft: its base model copy is not sharded with the model; run it on one process "
                              "(one GPU), or use dft")
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        weight = self.settings(run.params).lambda_
        return Setup(model, train_everything(model), extensions=[Anchored(reference, weight)])
