"""DFT (Dynamic Fine-Tuning, Wu et al. 2025): Full SFT whose loss weighs each response token's cross-entropy by the
token's own probability, held constant: Σ_t sg(p(y_t)) · (−log p(y_t)). Tokens the model finds unlikely pull less,
where plain cross-entropy pulls them hardest (its gradient scales with 1/p)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cofi.methods.base import Extension, Method, Setup, train_everything


def dft_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ over positions of sg(p(target)) · cross-entropy(target): ``logits`` positions × vocabulary."""
    cross_entropy = F.cross_entropy(logits, targets, reduction="none")
    return (torch.exp(-cross_entropy).detach() * cross_entropy).sum()


class ProbabilityWeighted(Extension):
    """The run's token loss is DFT's."""

    def token_loss(self, logits, targets, batch):
        return dft_loss(logits, targets)


class DFT(Method):
    name = "dft"
    description = "Full SFT with each token's cross-entropy weighted by its probability (detached): DFT"

    def setup(self, model, run, inputs):
        return Setup(model, train_everything(model), extensions=[ProbabilityWeighted()])
