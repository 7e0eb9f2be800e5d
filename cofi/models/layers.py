"""The Llama-family decoder layer as cofi names it (pure: no torch): its projections, where the layers are.

Regions, LoRA targets, soft masks, importance, sharding and the memory plan all read these names from here.
"""

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # self_attn.*
FFN = ("gate_proj", "up_proj", "down_proj")  # mlp.*
PROJECTIONS = ATTENTION + FFN
# The projections whose rows make a unit (a head's queries/keys/values, an intermediate or an output
# neuron); o_proj mixes heads into the residual stream and has no unit of its own.
UNIT_ROWS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj")
LAYOUT = ("the Llama-family layout: decoder layers at *.layers.N, with self_attn.{q,k,v,o}_proj and "
          "mlp.{gate,up,down}_proj")


class LayoutError(ValueError):
    """A model whose decoder layers are not where cofi looks for them."""


def decoder_layers(model):
    """The decoder layers of a Llama-family model (``model.get_decoder().layers``), also inside a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        raise LayoutError(f"{type(base).__name__}: no decoder layers at model.layers; cofi needs {LAYOUT}")
    return layers
