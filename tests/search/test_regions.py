from fractions import Fraction

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from cofi.search.regions import DEFAULT_GROUPS, Region, RegionError, freeze_outside, parse_region_id, trainable_names


def tiny(kind):
    common = dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=8,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**common)) if kind == "llama" else Qwen2ForCausalLM(Qwen2Config(**common))


@pytest.mark.parametrize("lo, hi, modules, expected", [
    (0.25, 0.5, ["ffn"], "r25-50_ffn"),
    (0, 0.5, ["mha", "ffn"], "r0-50_mha-ffn"),
    ("1/8", "3/8", ["mha"], "r12p5-37p5_mha"),
    (0.5, 1, ["ffn", "mha"], "r50-100_ffn-mha"),
])
def test_ids_are_stable_and_parse_back(lo, hi, modules, expected):
    region = Region.make(lo, hi, modules)
    assert region.id == expected
    assert parse_region_id(expected) == region


def test_layer_selection_follows_the_half_open_range():
    assert Region.make(0.25, 0.5, ["ffn"]).layers(8) == [2, 3]  # layers 3 and 4 (1-based) of 8
    assert Region.make(0, 0.5, ["ffn"]).layers(8) == [0, 1, 2, 3]
    assert Region.make(0.25, 0.75, ["ffn"]).layers(6) == [1, 2, 3]  # 1.5 < l <= 4.5: layers 2, 3, 4
    assert Region.make(0.75, 1, ["ffn"]).layers(40) == list(range(30, 40))
    assert Region.make(0.1, 0.2, ["ffn"]).layers(4) == []


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_exact_trainable_names(kind):
    model = tiny(kind)
    names = [n for n, _ in model.named_parameters()]
    ffn = trainable_names(names, Region.make(0.25, 0.5, ["ffn"]), DEFAULT_GROUPS, 8)
    assert ffn == [f"model.layers.{i}.mlp.{p}.weight" for i in (2, 3) for p in ("up_proj", "down_proj")]
    mha = trainable_names(names, Region.make(0.75, 1, ["mha"]), DEFAULT_GROUPS, 8)
    suffixes = ("weight", "bias") if kind == "qwen2" else ("weight",)  # Qwen2's q/k/v carry biases
    assert mha == [f"model.layers.{i}.self_attn.{p}.{s}" for i in (6, 7) for p in ("q_proj", "k_proj", "v_proj") for s in suffixes]
    both = trainable_names(names, Region.make(0, 0.25, ["mha", "ffn"]), DEFAULT_GROUPS, 8)
    assert len(both) == 2 * (3 * len(suffixes) + 2)
    custom = {"attn": ["o_proj"], "mlp": ["gate_proj", "up_proj", "down_proj"]}
    assert trainable_names(names, Region.make(0.875, 1, ["attn", "mlp"]), custom, 8) == [
        "model.layers.7.self_attn.o_proj.weight", "model.layers.7.mlp.gate_proj.weight",
        "model.layers.7.mlp.up_proj.weight", "model.layers.7.mlp.down_proj.weight"]


def test_freeze_outside_leaves_only_the_region_trainable_and_no_backward_below_it():
    model = tiny("llama")
    names = freeze_outside(model, Region.make(0.25, 0.5, ["ffn"]), DEFAULT_GROUPS)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(names)
    reached = set()
    for i, layer in enumerate(model.model.layers):
        layer.register_full_backward_hook(lambda module, gin, gout, i=i: reached.add(i))
    ids = torch.randint(0, 40, (2, 6))
    with pytest.warns(UserWarning, match="no inputs require gradients"):  # the lowest trained layer
        model(input_ids=ids, labels=ids).loss.backward()
    assert reached == {2, 3, 4, 5, 6, 7}  # layers 0 and 1 sit below the region: no backward pass
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    optimizer.step()
    assert len(optimizer.state) == len(names) == 4


@pytest.mark.parametrize("args, message", [
    ((0.5, 1.5, ["ffn"]), "0 <= a < b <= 1"),
    ((-0.1, 0.5, ["ffn"]), "0 <= a < b <= 1"),
    ((0.5, 0.5, ["ffn"]), "0 <= a < b <= 1"),
    ((0.6, 0.4, ["ffn"]), "0 <= a < b <= 1"),
    ((0, 0.5, []), "at least one module group"),
])
def test_bad_regions(args, message):
    with pytest.raises(RegionError, match=message):
        Region.make(*args)


def test_region_that_selects_no_layer_or_unknown_group():
    names = [n for n, _ in tiny("llama").named_parameters()]
    with pytest.raises(RegionError, match="selects no layer of a 8-layer model"):
        trainable_names(names, Region.make(0.3, 0.35, ["ffn"]), DEFAULT_GROUPS, 8)
    with pytest.raises(RegionError, match=r"unknown module group\(s\) \['moe'\]"):
        trainable_names(names, Region.make(0, 0.5, ["moe"]), DEFAULT_GROUPS, 8)
    with pytest.raises(RegionError, match=r"no parameters for projection\(s\) \['w1'\]"):
        trainable_names(names, Region.make(0, 0.5, ["x"]), {"x": ["w1"]}, 8)


def test_fractions_from_text_and_floats_agree():
    assert Region.make("1/4", "1/2", ["ffn"]) == Region.make(0.25, 0.5, ["ffn"])
    assert Region.make(0.25, 0.5, ["ffn"]).lo == Fraction(1, 4)
