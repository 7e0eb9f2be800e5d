"""Fine-SoftMask: damp each trained projection's rows by (1 − I) of the unit the row feeds.

Rows and units line up as in the model's forward pass: ``up_proj``/``gate_proj`` row j makes
intermediate unit j; ``down_proj`` row j makes output unit j; ``q_proj`` rows h·d … (h+1)·d − 1
make head h (``k_proj``/``v_proj`` rows make a key/value head, which under grouped-query attention
serves several query heads: it takes their mean). Other parameters are not masked.

Modes: ``grad`` scales the accumulated gradient once per optimizer step (the paper's); ``update``
scales what the optimizer changes (under Adam a constant gradient scale mostly cancels, an update
scale cannot); the controls ``shuffled`` (importance permuted within each layer) and ``uniform``
(every factor replaced by the mean factor) scale the gradient or the update, as ``apply_to`` says.
"""

from __future__ import annotations

import torch

from cofi.methods.cofitune.importance import head_dim
from cofi.training.extension import Extension
from cofi.methods.cofitune.softmask_keys import IMPORTANCE, MODES, TARGETS
from cofi.models.layers import UNIT_ROWS
from cofi.search.regions import layer_projection
from cofi.training.sharding import local, local_rows



def default_target(mode: str) -> str:
    """What a mode scales when the config does not say: controls scale the update (it cannot cancel)."""
    return "grad" if mode == "grad" else "update"


def control_importance(importance: dict[str, torch.Tensor], mode: str, seed: int) -> dict[str, torch.Tensor]:
    """The importance a mode uses: as estimated, or permuted within each layer (``shuffled``)."""
    if mode != "shuffled":
        return importance
    generator = torch.Generator().manual_seed(seed)
    shuffled = {}
    for kind, values in importance.items():
        rows = [row[torch.randperm(row.numel(), generator=generator)] for row in values]
        shuffled[kind] = torch.stack(rows)
    return shuffled


def row_factors(names: list[str], importance: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """{parameter name: factor per output row} for the trained projections a unit kind covers."""
    width = head_dim(config)
    group = config.num_attention_heads // (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    factors = {}
    for name in names:
        found = layer_projection(name)
        if not found or found[1] not in UNIT_ROWS:
            continue
        layer, projection = found
        if projection == "q_proj":
            factor = (1 - importance["head"][layer]).repeat_interleave(width)
        elif projection in ("k_proj", "v_proj"):
            per_kv_head = importance["head"][layer].view(-1, group).mean(dim=1)
            factor = (1 - per_kv_head).repeat_interleave(width)
        elif projection in ("gate_proj", "up_proj"):
            factor = 1 - importance["intermediate"][layer]
        else:
            factor = 1 - importance["output"][layer]
        factors[name] = factor.float()
    return factors


def uniform_factors(factors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every row gets the mean factor over all masked rows: the same average damping, no structure."""
    mean = torch.cat(list(factors.values())).mean()
    return {name: torch.full_like(factor, float(mean)) for name, factor in factors.items()}


def mask_factors(model, names: list[str], importance: dict[str, torch.Tensor], mode: str, seed: int) -> dict[str, torch.Tensor]:
    """Row factors for ``mode`` over the trained parameters ``names``."""
    if mode not in MODES:
        raise ValueError(f"unknown soft-mask mode {mode!r} (expected one of {', '.join(MODES)})")
    factors = row_factors(names, control_importance(importance, mode, seed), model.config)
    return uniform_factors(factors) if mode == "uniform" and factors else factors


def _rows(factor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if factor.numel() != like.shape[0]:
        raise ValueError(f"soft mask has {factor.numel()} rows, the parameter {tuple(like.shape)}")
    return factor.to(device=like.device, dtype=like.dtype).view(-1, *[1] * (like.dim() - 1))


class SoftMask(Extension):
    """A training-step extension: scales the gradient (before clipping) or the optimizer's update of
    the masked parameters.

    Call :meth:`attach` once with the optimizer and :meth:`after_backward` once per optimizer step,
    after the last micro-batch's backward: the gradient is then scaled once whatever the accumulation.
    The parameters are looked up by name when first used, so a model sharded after the mask was made
    (:mod:`cofi.training.sharding`) is masked on its shards: each process scales the rows it holds.
    """

    def __init__(self, model, factors: dict[str, torch.Tensor], target: str):
        if target not in TARGETS:
            raise ValueError(f"unknown soft-mask target {target!r} (expected grad or update)")
        self.model, self.factors, self.target = model, factors, target
        self._scaled: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._before: list[torch.Tensor] = []
        self._handles = []

    @property
    def scaled(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, factor per local row, shaped to broadcast over the row) of each masked parameter."""
        if self._scaled is None:
            parameters = dict(self.model.named_parameters())
            self._scaled = [(parameters[name], _rows(local_rows(factor, parameters[name]), local(parameters[name])))
                            for name, factor in self.factors.items()]
        return self._scaled

    def attach(self, optimizer) -> None:
        self._scaled = None  # bind to the parameters the optimizer trains
        if self.target == "update":
            self._handles = [optimizer.register_step_pre_hook(self._remember),
                             optimizer.register_step_post_hook(self._scale_update)]

    def after_backward(self) -> None:
        if self.target == "grad":
            for parameter, factor in self.scaled:
                if parameter.grad is not None:
                    local(parameter.grad).mul_(factor)

    @torch.no_grad()
    def _remember(self, optimizer, args, kwargs) -> None:
        self._before = [local(parameter).detach().clone() for parameter, _ in self.scaled]

    @torch.no_grad()
    def _scale_update(self, optimizer, args, kwargs) -> None:
        # w_new = w_old + f · (w_stepped − w_old)
        for (parameter, factor), before in zip(self.scaled, self._before):
            local(parameter).sub_(before).mul_(factor).add_(before)
        self._before = []

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def soft_mask(model, trainable: list[str], params: dict, importance_path: str, inputs) -> SoftMask:
    """The soft mask of a run: importance from ``importance_path``, mode and target from ``params``."""
    from cofi.errors import InputError
    from cofi.methods.cofitune.importance import load_importance

    importance = load_importance(importance_path, model.config)
    mode = params["softmask"]
    target = params.get("softmask_apply") or default_target(mode)
    factors = mask_factors(model, trainable, importance, mode, inputs.seed)
    if not factors:
        raise InputError(f"soft mask: none of the {len(trainable)} trained parameters is a masked projection")
    mean = float(sum(f.sum() for f in factors.values()) / sum(f.numel() for f in factors.values()))
    inputs.log(f"soft mask mode {mode}, scaling the {target}: {len(factors)} parameter tensors, mean factor {mean:.3f}")
    return SoftMask(model, factors, target)


def soft_mask_extensions(model, trainable: list[str], params: dict, inputs) -> list:
    """The run's soft mask as the training step's extension (none for ``softmask: none``)."""
    if params["softmask"] == "none":
        return []
    return [soft_mask(model, trainable, params, inputs.path(IMPORTANCE), inputs)]
