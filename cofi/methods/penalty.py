"""L1 and L2 toward the initial weights: Full SFT plus λ·Σ|w − w₀| (``l1``) or λ·Σ(w − w₀)² (``l2``).

The sums run over every trained element and join the objective once per gradient computation (not
once per micro-batch), so gradient accumulation does not scale them. λ is not normalised by the
parameter count: a model ten times larger needs a smaller λ for the same pull.
"""

from __future__ import annotations

from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Extension, Method, Setup, train_everything

WEIGHT_HELP = "penalty weight λ"


@dataclass(frozen=True)
class L1Config:
    lambda_: float = setting(1e-4, WEIGHT_HELP, sweep=True, minimum=0)  # the config key `lambda`


@dataclass(frozen=True)
class L2Config:
    lambda_: float = setting(0.1, WEIGHT_HELP, sweep=True, minimum=0)


class DistanceToInit(Extension):
    """A training-step extension whose penalty is λ times the L1 or squared L2 distance of the named
    parameters to where they started. The start is taken when the trainer attaches the extension, before
    any checkpoint is resumed and after any sharding, so each process keeps the start of its own shards."""

    def __init__(self, model, names: list[str], power: int, weight: float):
        self.model, self.names, self.power, self.weight = model, list(names), power, weight
        self.pairs = None

    def attach(self, optimizer) -> None:
        parameters = dict(self.model.named_parameters())
        self.pairs = [(parameters[n], parameters[n].detach().clone()) for n in self.names]

    def penalty(self):
        if self.pairs is None:  # used without a trainer: the start is now
            self.attach(None)
        if self.power == 1:
            total = sum((p - start).abs().sum() for p, start in self.pairs)
        else:
            total = sum((p - start).pow(2).sum() for p, start in self.pairs)
        return self.weight * total


class L1(Method):
    name = "l1"
    description = "Full SFT + λ·Σ|w − w₀| toward the initial weights"
    config = L1Config
    power = 1

    def weight_copies(self, params):
        return 1  # the start the penalty pulls toward

    def setup(self, model, run, inputs):
        trainable = train_everything(model)
        weight = self.settings(run.params).lambda_
        return Setup(model, trainable, extensions=[DistanceToInit(model, trainable, self.power, weight)])


class L2(L1):
    name = "l2"
    description = "Full SFT + λ·Σ(w − w₀)² toward the initial weights"
    config = L2Config
    power = 2
