"""LoRA through ``peft``: low-rank adapters on the chosen projections, on every layer or on a layer range.

The adapter is saved next to the model (``model/adapter/``, loadable with
``PeftModel.from_pretrained``) and merged into the weights that are saved, so LoRA runs go through the
same evaluation as every other method; ``evaluation.lora: adapter`` scores the base model with the
adapter unmerged instead, as adapters are served.
"""

from __future__ import annotations

from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Method, MethodError, Setup
from cofi.models.layers import PROJECTIONS
from cofi.search.regions import Region, RegionError


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = setting(8, "adapter rank r", minimum=1)
    alpha: float = setting(16, "lora_alpha (scale alpha / r)", exclusiveMinimum=0)
    dropout: float = setting(0.0, "lora_dropout", minimum=0, exclusiveMaximum=1)
    target_modules: tuple[str, ...] = setting(PROJECTIONS, "projection names inside the decoder layers", minItems=1)
    range: tuple[float, ...] | None = setting(None, "layer range (a, b] as fractions of the depth (peft "
                                              "layers_to_transform); null: all layers", minItems=2, maxItems=2)


def lora_layers(params: dict, n_layers: int) -> list[int] | None:
    """0-based layers to adapt (``range`` (a, b] as fractions of the depth), or None for all."""
    if params["range"] is None:
        return None
    return Region.make(*params["range"], ["lora"]).layers(n_layers)


class LoRA(Method):
    name = "lora"
    description = "LoRA (peft): low-rank adapters, merged for evaluation"
    config = LoRAConfig

    adds_parameters = True
    adapter = "adapter"  # model/adapter/: scored unmerged under evaluation.lora: adapter

    def trained_params(self, arch, params, module_groups):
        """r · (in + out) per adapted projection, on the adapted layers."""
        layers = lora_layers(params, arch.layers)
        shapes = arch.projection_shapes()
        per_layer = sum(params["rank"] * (shapes[t][0] + shapes[t][1]) for t in params["target_modules"] if t in shapes)
        return (arch.layers if layers is None else len(layers)) * per_layer

    def check(self, key, run, context):
        params = run.params
        if params["range"] is not None:
            try:
                layers = lora_layers(params, context.n_layers or 1)
            except RegionError as error:
                raise MethodError(f"config key {key}.range: {error}") from None
            if context.n_layers is not None and not layers:
                a, b = params["range"]
                raise MethodError(f"config key {key}.range: ({a}, {b}] selects no layer of a {context.n_layers}-layer model")
        known = context.projection_names()
        if known is not None and (unknown := sorted(set(params["target_modules"]) - known)):
            raise MethodError(f"config key {key}.target_modules: the model's decoder layers have no {unknown} "
                              f"(they have {', '.join(sorted(known))})")

    def setup(self, model, run, inputs):
        from peft import LoraConfig, get_peft_model

        own = self.settings(run.params)
        config = LoraConfig(r=own.rank, lora_alpha=own.alpha, lora_dropout=own.dropout,
                            target_modules=list(own.target_modules),
                            layers_to_transform=lora_layers(run.params, model.config.num_hidden_layers),
                            task_type="CAUSAL_LM")
        adapted = get_peft_model(model, config)
        trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]

        def finish(trained, out_dir):
            trained.save_pretrained(out_dir / "adapter")  # adapter_config.json + adapter_model.safetensors
            return trained.merge_and_unload()

        return Setup(adapted, trainable, finish=finish)
