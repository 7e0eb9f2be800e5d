"""SAM: one step against a hand computation, two passes per step, accumulation, exact restore."""

import copy

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from cofi.data.prompts import Prompter
from cofi.training.sam import SAM
from cofi.config.settings import TrainSettings
from cofi.training.loop import collate, token_loss_sum, tokenize_dataset, train

from conftest import TEMPLATE

RHO, LR = 0.05, 1e-2


def mean_loss_gradient(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss, n = token_loss_sum(model, batch)
    (loss / n).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_one_sam_step_matches_a_hand_computation(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"][:4], Prompter(tokenizer, TEMPLATE), True, 32)
    batch = collate(examples, pad_id=0)  # batch_size 4 = every example, so the trainer sees this batch
    start = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}

    # By hand: g at w, eps = rho * g / ||g|| (one norm over all parameters), g' at w + eps.
    g = mean_loss_gradient(copy.deepcopy(tiny_model), batch)
    norm = torch.sqrt(sum((v ** 2).sum() for v in g.values()))
    perturbed = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for name, p in perturbed.named_parameters():
            p.add_(RHO * g[name] / norm)
    g_sam = mean_loss_gradient(perturbed, batch)

    seen, forwards = [], []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append({id(p): (p.detach().clone(), p.grad.clone()) for grp in opt.param_groups for p in grp["params"]}))
    counter = tiny_model.register_forward_hook(lambda *_: forwards.append(1))
    settings = TrainSettings(lr=LR, steps=1, batch_size=4, warmup_ratio=0, max_grad_norm=0)
    try:
        train(tiny_model, examples, settings, 0, 0, tmp_path / "curve.csv", log=lambda _: None, extensions=[SAM(RHO)])
    finally:
        hook.remove()
        counter.remove()
    assert len(forwards) == 2  # exactly two forward (and backward) passes for the step
    for name, p in tiny_model.named_parameters():
        weights, grad = seen[0][id(p)]
        assert torch.equal(weights, start[name]), f"{name}: the optimizer must step from w, restored exactly"
        torch.testing.assert_close(grad, g_sam[name], rtol=1e-5, atol=1e-8, msg=f"{name}: gradient at w + eps")
        # AdamW's first step (no weight decay, bias-corrected) with that gradient: w - lr * g' / (|g'| + eps).
        expected = start[name] - LR * grad / (grad.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7, msg=name)
    # The gradient at w + eps is not the plain gradient: the test can tell SAM from AdamW.
    assert any(not torch.allclose(g[n], g_sam[n], rtol=1e-3, atol=1e-6) for n in g)


def test_sam_under_accumulation_equals_one_big_batch(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"][:8], Prompter(tokenizer, TEMPLATE), True, 32)
    models, forwards = [], []
    for batch_size, accum in ((4, 1), (2, 2)):
        model = copy.deepcopy(tiny_model)
        counter = model.register_forward_hook(lambda *_: forwards.append(1))
        settings = TrainSettings(lr=LR, steps=3, batch_size=batch_size, grad_accum=accum, warmup_ratio=0)
        train(model, examples, settings, 1, 0, tmp_path / f"{accum}.csv", log=lambda _: None, extensions=[SAM(RHO)])
        counter.remove()
        models.append(model)
    assert len(forwards) == 3 * 2 + 3 * 4  # two passes per micro-batch, per step
    # Equal up to rounding, which Adam's early steps amplify where a gradient is ~1e-8 (a handful of weights).
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)


def test_ascend_and_restore():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    v = torch.nn.Parameter(torch.tensor([0.5]))
    w.grad, v.grad = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0])
    sam = SAM(0.5, params=[w, v])
    before = w.detach().clone()
    sam.ascend()
    assert sam.last_grad_norm == 5.0
    torch.testing.assert_close(w.detach(), before + 0.5 * torch.tensor([0.6, 0.0, 0.8]))
    sam.restore()
    assert torch.equal(w.detach(), before) and v.item() == 0.5


def test_sam_loss_is_logged_and_is_higher_than_the_loss(tiny_model, tokenizer, tiny_world, tmp_path):
    import pandas as pd

    examples = tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)
    settings = TrainSettings(lr=1e-3, steps=5, batch_size=8, warmup_ratio=0)
    train(tiny_model, examples, settings, 0, 0, tmp_path / "curve.csv", log=lambda _: None, extensions=[SAM(0.5)])
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert (curve["sam_loss"] > curve["loss"]).all()  # an ascent step of radius 0.5 raises the loss
