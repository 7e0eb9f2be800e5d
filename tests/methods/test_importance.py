import statistics

import pytest
import torch

from cofi.data.prompts import Prompter
from cofi.methods.cofitune.importance import (
    ImportanceError,
    accumulate_importance,
    load_importance,
    normalise,
    plot_importance,
    prompt_batches,
    save_importance,
    virtual_masks,
)
from cofi.models.loading import build_llama

from conftest import TEMPLATE, TINY_ARCH


@pytest.fixture
def batches(tiny_world, tokenizer):
    return prompt_batches(tiny_world["bio_train"], Prompter(tokenizer, TEMPLATE), batch_size=8, n_batches=3, max_len=32, seed=0)


def test_normalisation_matches_the_formula():
    raw = torch.tensor([[1.0, 2.0, 4.0, 9.0], [3.0, 3.0, 3.0, 3.0]])
    got = normalise(raw)
    values = [1.0, 2.0, 4.0, 9.0]
    mean, std = statistics.mean(values), statistics.stdev(values)  # unbiased, as the official code
    import math

    expected = [abs(math.tanh((v - mean) / std)) for v in values]
    torch.testing.assert_close(got[0], torch.tensor(expected), atol=1e-6, rtol=0)
    assert got[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # nothing to tell apart
    assert ((got >= 0) & (got < 1)).all()


def test_masks_of_ones_leave_the_model_unchanged(tiny_model, batches):
    inputs = {k: batches[0][k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        before = tiny_model(**inputs).logits
        with virtual_masks(tiny_model, dropout=0.1):
            inside = tiny_model(**inputs).logits  # eval mode: no dropout, masks are ones
        after = tiny_model(**inputs).logits
    torch.testing.assert_close(inside, before)
    torch.testing.assert_close(after, before)


def test_a_zeroed_unit_is_the_least_important_in_its_layer(tiny_model, batches):
    layers = tiny_model.model.layers
    head_width = TINY_ARCH["hidden"] // TINY_ARCH["heads"]
    with torch.no_grad():
        layers[1].mlp.up_proj.weight[5].zero_()  # intermediate unit 5 of layer 1 outputs 0
        layers[0].mlp.down_proj.weight[7].zero_()  # output unit 7 of layer 0 outputs 0
        layers[1].self_attn.v_proj.weight[2 * head_width : 3 * head_width].zero_()  # head 2 of layer 1 outputs 0
    raw = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    assert raw["intermediate"][1].argmin() == 5 and raw["intermediate"][1, 5] == 0
    assert raw["output"][0].argmin() == 7 and raw["output"][0, 7] == 0
    assert raw["head"][1].argmin() == 2 and raw["head"][1, 2] == 0
    # Everything else got a real signal: the proxy is not zero elsewhere.
    assert (raw["intermediate"][0] > 0).all() and (raw["head"][0] > 0).all()


def test_estimation_is_seeded_and_restores_the_model(tiny_model, batches):
    flags = [p.requires_grad for p in tiny_model.parameters()]
    a = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    b = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    signed = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0, signed=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (signed["output"] < 0).any() and (signed["output"].abs() <= a["output"] + 1e-9).all()
    assert [p.requires_grad for p in tiny_model.parameters()] == flags
    assert all(p.grad is None for p in tiny_model.parameters())
    assert not tiny_model.training and tiny_model.model.layers[0].self_attn.attention_dropout == 0.0


def test_file_round_trip_and_heatmap(tiny_model, batches, tmp_path):
    raw = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    path = tmp_path / "importance.safetensors"
    saved = save_importance(path, raw, tiny_model.config, {"dropout": 0.05})
    loaded = load_importance(path, tiny_model.config)
    assert {k: tuple(v.shape) for k, v in loaded.items()} == {"head": (2, 4), "intermediate": (2, 64), "output": (2, 32)}
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert all(torch.equal(raw[k], v) for k, v in load_importance(path, tiny_model.config, raw=True).items())
    plot_importance(loaded, tmp_path / "importance.png")
    assert (tmp_path / "importance.png").stat().st_size > 5_000


def test_importance_of_another_shape_is_refused(tiny_model, tokenizer, batches, tmp_path):
    raw = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    path = tmp_path / "importance.safetensors"
    save_importance(path, raw, tiny_model.config, {})
    wider = build_llama(len(tokenizer), {**TINY_ARCH, "intermediate": 48}, seed=0)
    with pytest.raises(ImportanceError, match=r"importance.safetensors: made for a model of another shape \(intermediate_size: file 64, model 48\)"):
        load_importance(path, wider.config)
    with pytest.raises(ImportanceError, match="no such importance file"):
        load_importance(tmp_path / "missing.safetensors", tiny_model.config)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ImportanceError, match="junk.safetensors: cannot read as safetensors"):
        load_importance(tmp_path / "junk.safetensors", tiny_model.config)


def test_parts_of_a_batch_give_the_same_importance_whichever_process_runs_them(tiny_model, batches):
    """A batch in parts of one row: each part draws its dropout from its own seed, so signed importance (linear in the
    parts) from two processes that each run every other part, recombined by their token counts, equals one process
    running every part; parts draw otherwise than the whole batch; gradient checkpointing replays the draws and gives
    the same importance; parts that do not split evenly over the processes are refused."""
    import copy

    micro = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0, signed=True, micro_batch_size=1)
    halves = [accumulate_importance(tiny_model, batches, dropout=0.05, seed=0, signed=True, micro_batch_size=1,
                                    process=p, processes=2) for p in (0, 1)]
    tokens = [sum(int(b["attention_mask"][p::2].sum()) for b in batches) for p in (0, 1)]
    for kind in micro:
        combined = (halves[0][kind].double() * tokens[0] + halves[1][kind].double() * tokens[1]) / sum(tokens)
        torch.testing.assert_close(micro[kind].double(), combined, rtol=1e-5, atol=1e-9)
    whole = accumulate_importance(tiny_model, batches, dropout=0.05, seed=0)
    assert not all(torch.allclose(whole[k], accumulate_importance(tiny_model, batches, dropout=0.05, seed=0,
                                                                    micro_batch_size=1)[k]) for k in whole)
    checkpointed = accumulate_importance(copy.deepcopy(tiny_model), batches, dropout=0.05, seed=0, checkpointing=True)
    for kind in whole:
        torch.testing.assert_close(checkpointed[kind], whole[kind], rtol=1e-5, atol=1e-9)
    five = [{key: value[:5] for key, value in batches[0].items()}]
    with pytest.raises(ValueError, match="a batch of 5 inputs in parts of 2 does not split evenly over 2 processes"):
        accumulate_importance(tiny_model, five, dropout=0.05, seed=0, micro_batch_size=2, process=0, processes=2)