"""Fine-tuning methods, registered by name. A method decides what trains and how.

Issue-2 scope: only Full SFT. Later methods (region, LoRA, soft masks…) register here too, each in
one place, and all go through the same fine-tune / evaluate / table rules.
"""

from __future__ import annotations


def prepare_full(model, params: dict):
    """Full SFT: every parameter trains."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


METHODS = {"full": prepare_full}
