import copy
from types import SimpleNamespace

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from cofi.search.regions import Region, freeze_outside
from cofi.methods.cofitune.softmask import SoftMask, control_importance, mask_factors, row_factors
from cofi.config.settings import TrainSettings
from cofi.training.loop import collate, token_loss_sum, train

from conftest import TINY_ARCH

HEAD_WIDTH = TINY_ARCH["hidden"] // TINY_ARCH["heads"]
GROUPS = {"mha": ["q_proj", "k_proj", "v_proj", "o_proj"], "ffn": ["gate_proj", "up_proj", "down_proj"]}


def random_importance(seed=0):
    g = torch.Generator().manual_seed(seed)
    layers = TINY_ARCH["layers"]
    return {"head": torch.rand(layers, TINY_ARCH["heads"], generator=g),
            "intermediate": torch.rand(layers, TINY_ARCH["intermediate"], generator=g),
            "output": torch.rand(layers, TINY_ARCH["hidden"], generator=g)}


def expected_row_factor(name: str, row: int, importance) -> float | None:
    """By hand: which unit a row of a projection feeds (None: not masked)."""
    layer = int(name.split(".layers.")[1].split(".")[0])
    if any(p in name for p in ("q_proj", "k_proj", "v_proj")):
        return 1 - importance["head"][layer, row // HEAD_WIDTH].item()
    if "up_proj" in name or "gate_proj" in name:
        return 1 - importance["intermediate"][layer, row].item()
    if "down_proj" in name:
        return 1 - importance["output"][layer, row].item()
    return None



def gradients(model, batch):
    model.zero_grad(set_to_none=True)
    loss, n = token_loss_sum(model, batch)
    (loss / n).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_grad_mode_scales_exactly_the_intended_rows(tiny_model, examples):
    importance = random_importance()
    names = freeze_outside(tiny_model, Region.make(0.5, 1, ["mha", "ffn"]), GROUPS)  # layer 1, all projections
    batch = collate(examples[:8], pad_id=0)
    reference = gradients(tiny_model, batch)
    mask = SoftMask(tiny_model, mask_factors(tiny_model, names, importance, "grad", seed=0), "grad")
    mask.after_backward()
    masked = {name: p.grad for name, p in tiny_model.named_parameters() if p.grad is not None}
    assert set(masked) == set(names) and len(names) == 7
    for name in names:
        for row in range(masked[name].shape[0]):
            factor = expected_row_factor(name, row, importance)
            expected = reference[name][row] * (1.0 if factor is None else factor)
            torch.testing.assert_close(masked[name][row], expected, rtol=1e-6, atol=0, msg=f"{name} row {row}")
    assert torch.equal(masked["model.layers.1.self_attn.o_proj.weight"], reference["model.layers.1.self_attn.o_proj.weight"])


def test_update_mode_scales_the_optimizer_step_not_the_gradient(tiny_model, examples):
    importance = random_importance(1)
    names = freeze_outside(tiny_model, Region.make(0, 1, ["mha", "ffn"]), {"mha": ["q_proj", "o_proj"], "ffn": ["down_proj"]})
    plain = copy.deepcopy(tiny_model)
    start = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    batch = collate(examples[:8], pad_id=0)

    def one_step(model, hooks):
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for hook in hooks:
            hook.attach(optimizer)
        gradients(model, batch)
        for hook in hooks:
            hook.after_backward()
        optimizer.step()

    one_step(plain, [])
    mask = SoftMask(tiny_model, mask_factors(tiny_model, names, importance, "update", seed=0), "update")
    one_step(tiny_model, [mask])
    moved = dict(tiny_model.named_parameters())
    for name, p in plain.named_parameters():
        full_step, masked_step = p.detach() - start[name], moved[name].detach() - start[name]
        if name not in names:
            assert not masked_step.any(), name
            continue
        assert full_step.abs().sum() > 0
        factors = torch.tensor([expected_row_factor(name, r, importance) or 1.0 for r in range(p.shape[0])])
        torch.testing.assert_close(masked_step, full_step * factors[:, None], rtol=1e-4, atol=1e-7, msg=name)


def test_the_mask_is_applied_once_per_step_under_accumulation(tiny_model, examples, tmp_path):
    importance = random_importance(2)
    region = Region.make(0, 1, ["ffn"])
    seen = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: seen.append({id(p): p.grad.clone() for g in optimizer.param_groups for p in g["params"]}))
    settings = TrainSettings(lr=1e-3, steps=2, batch_size=4, grad_accum=3, warmup_ratio=0, max_grad_norm=0)
    try:
        models = []
        for masked in (False, True):
            model = copy.deepcopy(tiny_model)
            names = freeze_outside(model, region, GROUPS)
            hooks = [SoftMask(model, mask_factors(model, names, importance, "grad", seed=0), "grad")] if masked else []
            train(model, examples, settings, 5, 0, tmp_path / f"{masked}.csv", log=lambda _: None, extensions=hooks)
            models.append((model, names))
    finally:
        hook.remove()
    assert len(seen) == 4  # two optimizer steps per run
    (plain, names), (masked, _) = models
    plain_params, masked_params = dict(plain.named_parameters()), dict(masked.named_parameters())
    # Step 1 starts from identical weights and batches: masked grad = factor × plain grad, once.
    for name in names:
        reference, got = seen[0][id(plain_params[name])], seen[2][id(masked_params[name])]
        factors = torch.tensor([expected_row_factor(name, r, importance) for r in range(reference.shape[0])])
        torch.testing.assert_close(got, reference * factors[:, None], rtol=1e-5, atol=1e-9, msg=name)


def test_controls_keep_the_values_but_not_the_structure():
    importance = random_importance(3)
    shuffled = control_importance(importance, "shuffled", seed=0)
    for kind in importance:
        assert torch.equal(shuffled[kind].sort(dim=1).values, importance[kind].sort(dim=1).values)
        assert not torch.equal(shuffled[kind], importance[kind])
    assert torch.equal(control_importance(importance, "shuffled", seed=0)["intermediate"], shuffled["intermediate"])
    config = SimpleNamespace(num_attention_heads=4, num_key_value_heads=4, hidden_size=32, head_dim=8)
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    real = row_factors(names, importance, config)
    model = SimpleNamespace(config=config)
    uniform = mask_factors(model, names, importance, "uniform", seed=0)
    mean = torch.cat(list(real.values())).mean()
    assert all(torch.allclose(f, torch.full_like(f, float(mean))) for f in uniform.values())


def test_grouped_query_heads_share_their_key_value_rows():
    importance = {"head": torch.tensor([[0.1, 0.3, 0.5, 0.9]]), "intermediate": torch.zeros(1, 4), "output": torch.zeros(1, 8)}
    config = SimpleNamespace(num_attention_heads=4, num_key_value_heads=2, hidden_size=8, head_dim=2)
    factors = row_factors(["model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.q_proj.weight"], importance, config)
    torch.testing.assert_close(factors["model.layers.0.self_attn.k_proj.weight"], torch.tensor([0.8, 0.8, 0.3, 0.3]))
    torch.testing.assert_close(factors["model.layers.0.self_attn.q_proj.weight"], torch.tensor([0.9, 0.9, 0.7, 0.7, 0.5, 0.5, 0.1, 0.1]))
