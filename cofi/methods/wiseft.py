"""Wise-FT: weights interpolated between the base model and a fine-tuned run, no extra training.

w = (1 − α)·w_base + α·w_source, tensor by tensor (α = 0 is the base model, α = 1 the source run).
``alpha`` may be a list: one run, and one table row, per value. The source is a configured run
that trains (default ``full``), taken at the same task and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Method, MethodError, Need

SOURCE_MODEL = Need("source_model", "the fine-tuned model to interpolate toward",
                    lambda experiment, run, task, seed: experiment.run_file(run.params["source"], task, seed, "model"))


def interpolate(base: str, source: str, alpha: float, dtype, out, max_shard_bytes: int | None = None) -> list:
    """Write (1 − α)·base + α·source, the weights of the model directories ``base`` and ``source`` in ``dtype``
    (floating-point tensors; others are the base's), into ``out``, tensor by tensor: neither model is loaded, and
    memory holds one shard of the result (:mod:`cofi.models.weights`). Returns the files written."""
    from cofi.models.weights import stored_weights, write_shards

    with stored_weights(base) as base_weights, stored_weights(source) as source_weights:
        names = base_weights.names()
        if set(names) != set(source_weights.names()):
            differ = sorted(set(names) ^ set(source_weights.names()))[:5]
            raise MethodError(f"wiseft: the source model's tensors differ from the base model's (e.g. {differ})")
        shapes = {}
        for name in names:
            (shape, stored), (other, _) = base_weights.shape_and_dtype(name), source_weights.shape_and_dtype(name)
            if shape != other:
                raise MethodError(f"wiseft: {name} has shape {other} in the source, {shape} in the base")
            shapes[name] = (shape, dtype if stored.is_floating_point else stored)

        def mixed(name: str):
            tensor = base_weights.tensor(name)
            if not tensor.is_floating_point():
                return tensor
            return tensor.to(dtype, copy=True).lerp_(source_weights.tensor(name).to(dtype), alpha)

        return write_shards(out, shapes, mixed, **({"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}))


@dataclass(frozen=True)
class WiseFTConfig:
    alpha: float = setting(0.5, "weight of the fine-tuned model", sweep=True, minimum=0, maximum=1)
    source: str = setting("full", "the configured run to interpolate toward")


class WiseFT(Method):
    name = "wiseft"
    description = "Wise-FT: (1 − α)·base + α·fine-tuned weights"
    config = WiseFTConfig
    trains = False
    needs = (SOURCE_MODEL,)

    def check(self, key, run, context):
        source, runs = run.params["source"], context.experiment.runs
        if source not in runs:
            raise MethodError(f"config key {key}.source: {source!r} is not a configured run (runs: {', '.join(runs)})")
        if not context.experiment.method_of(source).trains:
            raise MethodError(f"config key {key}.source: {source!r} does not train; name a fine-tuned run such as full")

    def build(self, base, out, run, inputs, dtype):
        path = inputs.path(SOURCE_MODEL)
        inputs.log(f"interpolating {path} with alpha {run.params['alpha']}, tensor by tensor")
        interpolate(base, path, run.params["alpha"], dtype, out)
