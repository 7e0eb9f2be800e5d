"""Wise-FT: weights interpolated between the base model and a fine-tuned run, no extra training.

w = (1 − α)·w_base + α·w_source, tensor by tensor (α = 0 is the base model, α = 1 the source run).
``alpha`` may be a list: one run, and one table row, per value. The source is a configured run
that trains (default ``full``), taken at the same task and seed.
"""

from cofi.methods.base import Method, MethodError, Need

SOURCE_MODEL = Need("source_model", "the fine-tuned model to interpolate toward",
                    lambda experiment, run, task, seed: experiment.run_file(run.params["source"], task, seed, "model"))


def interpolate(base, source, alpha: float):
    """Write (1 − α)·base + α·source into ``base``'s floating-point tensors; returns ``base``."""
    import torch

    base_state, source_state = base.state_dict(), source.state_dict()
    if base_state.keys() != source_state.keys():
        differ = sorted(set(base_state) ^ set(source_state))[:5]
        raise MethodError(f"wiseft: the source model's tensors differ from the base model's (e.g. {differ})")
    with torch.no_grad():
        for name, tensor in base_state.items():
            other = source_state[name]
            if tensor.shape != other.shape:
                raise MethodError(f"wiseft: {name} has shape {tuple(other.shape)} in the source, {tuple(tensor.shape)} in the base")
            if tensor.is_floating_point():
                tensor.lerp_(other.to(tensor.dtype), alpha)
    return base


class WiseFT(Method):
    name = "wiseft"
    description = "Wise-FT: (1 − α)·base + α·fine-tuned weights"
    keys = {
        "alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                  "description": "weight of the fine-tuned model"},
        "source": {"type": "string", "default": "full", "description": "the configured run to interpolate toward"},
    }
    sweep = ("alpha",)
    trains = False
    needs = (SOURCE_MODEL,)

    def check(self, key, run, context):
        source, runs = run.params["source"], context.experiment.runs
        if source not in runs:
            raise MethodError(f"config key {key}.source: {source!r} is not a configured run (runs: {', '.join(runs)})")
        if not context.experiment.method_of(source).trains:
            raise MethodError(f"config key {key}.source: {source!r} does not train; name a fine-tuned run such as full")

    def build(self, model, run, inputs):
        params = run.params
        path = inputs.path(SOURCE_MODEL)
        source, _ = inputs.load_model(path)
        inputs.log(f"interpolating {path} with alpha {params['alpha']}")
        return interpolate(model, source, params["alpha"])
