"""Wise-FT: weights interpolated between the base model and a fine-tuned run, no extra training.

w = (1 − α)·w_base + α·w_source, tensor by tensor (α = 0 is the base model, α = 1 the source run).
``alpha`` may be a list: one run, and one table row, per value. The source is a configured run
that trains (default ``full``), taken at the same task and seed.
"""

from cofi.methods.base import Method, MethodError


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
    needs = ("source_model",)

    def check(self, key, params, context):
        source = params["source"]
        if source not in context.runs:
            raise MethodError(f"config key {key}.source: {source!r} is not a configured run (runs: {', '.join(context.runs)})")
        from cofi.methods import METHODS

        if not METHODS[context.runs[source]["method"]].trains:
            raise MethodError(f"config key {key}.source: {source!r} does not train; name a fine-tuned run such as full")

    def build(self, model, params, inputs):
        source, _ = inputs.load_model(inputs.source_model)
        inputs.log(f"interpolating {inputs.source_model} with alpha {params['alpha']}")
        return interpolate(model, source, params["alpha"])
