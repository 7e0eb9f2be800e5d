"""The config keys the soft-mask methods (``cofitune``, ``vsoftmask``) share, their check, and the
importance file they read.

Kept apart from :mod:`cofi.methods.cofitune.softmask` (the torch side, which imports these and never the
reverse) so that reading a config never imports torch.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import MethodError, Need

MODES = ("grad", "update", "shuffled", "uniform", "none")
TARGETS = ("grad", "update")


@dataclass(frozen=True)
class SoftMaskConfig:
    """The soft-mask methods' own keys (V-SoftMask's all of them)."""

    softmask: typing.Literal[MODES] = setting(
        "grad", "grad (the paper's), update, the controls shuffled and uniform, or none (no mask)", sweep=True)
    softmask_apply: typing.Literal[TARGETS] | None = setting(
        None, "what the shuffled/uniform controls scale (null: the update)")

# Unit importance of the base model, estimated once per data source by the importance rule.
IMPORTANCE = Need("importance", "unit importance (.safetensors from the importance rule)",
                  lambda experiment, run, task, seed: experiment.layout.importance(experiment.importance_source(task)))


def update_copies(params: dict) -> int:
    """A mask that scales the update keeps the weights from before each step (one copy); a gradient mask none."""
    return int(params.get("softmask") in ("update", "shuffled", "uniform") and params.get("softmask_apply") != "grad")


def check_soft_mask_keys(key: str, params: dict) -> None:
    mode, apply = params["softmask"], params["softmask_apply"]
    if mode == "none" and apply is not None:
        raise MethodError(f"config key {key}.softmask_apply: softmask none scales nothing")
    if mode in TARGETS and apply not in (None, mode):
        raise MethodError(f"config key {key}.softmask_apply: mode {mode!r} always scales the {mode}; "
                          "softmask_apply chooses only for the shuffled and uniform controls")
