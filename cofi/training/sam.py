"""Sharpness-aware minimisation (Foret et al., 2021) as an option of the training loop.

One SAM step, on one batch, is exactly two forward/backward passes:

1. the gradient g of the objective at the weights w (every micro-batch of the step, so under
   gradient accumulation g is the gradient of the whole accumulated batch: SAM's "m" is the
   full batch, and accumulation changes nothing but memory);
2. ascend to w + ε with ε = ρ · g / ‖g‖, ‖g‖ the global L2 norm over every trained parameter;
3. the gradient at w + ε on the same micro-batches, then w is restored exactly (copied back, not
   subtracted, so no rounding drifts the weights);
4. the base optimizer steps with that second gradient (after soft masks and clipping, like any
   gradient).

Under sharding (:mod:`cofi.training.sharding`) each process holds only its shard of g and of w: the squared
norm is summed over the shards, so ‖g‖ and ε are global (the original release took it per shard),
and each process ascends and restores its own shard.
"""

from __future__ import annotations

import torch

from cofi.training.extension import Extension
from cofi.training.sharding import is_sharded, local, square_sum


class SAM(Extension):
    """A training-step extension: the step's gradients are taken again at w + ε (:meth:`gradients`);
    :meth:`ascend` and :meth:`restore` are its two halves."""

    def __init__(self, rho: float, params=None, eps: float = 1e-12):
        if rho <= 0:
            raise ValueError(f"SAM needs rho > 0, got {rho}")
        self.params = [p for p in params if p.requires_grad] if params is not None else []
        self.rho, self.eps = rho, eps
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.last_grad_norm = None  # a tensor on the device (reading it waits for the step)

    def attach(self, optimizer) -> None:
        if not self.params:  # what the optimizer trains, in its order
            self.params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]

    def gradients(self, compute, zero_grad) -> dict:
        """The first pass's fields, with the loss at w + ε as ``sam_loss``; the gradients are the second pass's."""
        first = compute()
        self.ascend()
        zero_grad()
        second = compute()
        self.restore()
        return {**first, "sam_loss": second["loss"]}

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """‖g‖ over every trained parameter; for sharded gradients over every shard (cofi.training.sharding)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if any(is_sharded(g) for g in grads):
            return square_sum(grads).sqrt()
        # Squares in float32 at least (a float64 model keeps float64).
        squares = [g.detach().to(torch.promote_types(g.dtype, torch.float32)).pow(2).sum() for g in grads]
        return (torch.stack(squares).sum() if squares else torch.zeros(())).sqrt()

    @torch.no_grad()
    def ascend(self) -> None:
        """w ← w + ρ·g/‖g‖ for every parameter with a gradient (each process its own shard); remembers w."""
        norm = self.grad_norm()
        self.last_grad_norm = norm
        scale = self.rho / (norm + self.eps)
        self._saved = []
        for p in self.params:
            if p.grad is None:
                continue
            weights, grad = local(p), local(p.grad)
            self._saved.append((weights, weights.clone()))
            weights.add_(grad * scale.to(device=weights.device, dtype=weights.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        for weights, saved in self._saved:
            weights.copy_(saved)
        self._saved = []
