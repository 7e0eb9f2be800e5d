import copy

import pandas as pd
import pytest
import torch

from cofi.data.prompts import IGNORE_INDEX, Prompter
from cofi.methods.base import Extension
from cofi.config.settings import TrainSettings
from cofi.training.loop import tokenize_dataset, train

from conftest import TEMPLATE


def test_prompt_masking(tokenizer):
    record = {"instruction": "rotate", "input": "a b c", "output": "b c a"}
    masked = Prompter(tokenizer, TEMPLATE).example(record, mask_prompt=True, max_len=32)
    ids = masked["input_ids"]
    assert tokenizer.decode(ids) == "<s> rotate a b c = b c a </s>"
    n_prompt = 6  # <s> rotate a b c =
    assert masked["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert masked["labels"][n_prompt:] == ids[n_prompt:]
    unmasked = Prompter(tokenizer, TEMPLATE).example(record, mask_prompt=False, max_len=32)
    assert unmasked["labels"] == ids
    cut = Prompter(tokenizer, TEMPLATE).example(record, mask_prompt=True, max_len=8)
    assert len(cut["input_ids"]) == len(cut["labels"]) == 8


def run(model, examples, tmp_path, name, hooks=(), seed=1, **overrides):
    settings = TrainSettings(**{"lr": 1e-2, "steps": 3, "batch_size": 4, "warmup_ratio": 0.0, **overrides})
    train(model, examples, settings, seed, pad_id=0, curve_path=tmp_path / f"{name}.csv", log=lambda _: None,
          extensions=hooks)
    return model


class GradientLog(Extension):
    """A training-step extension that keeps a copy of every step's gradients (after the last micro-batch)."""

    def __init__(self, model):
        self.model, self.steps = model, []

    def after_backward(self):
        self.steps.append([p.grad.detach().clone() for p in self.model.parameters()])


def test_gradient_accumulation_matches_one_big_batch(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"][:8], Prompter(tokenizer, TEMPLATE), True, 32)
    big_model, accumulated_model = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    big_grads, accumulated_grads = GradientLog(big_model), GradientLog(accumulated_model)
    big = run(big_model, examples, tmp_path, "big", hooks=[big_grads], batch_size=4, grad_accum=1)
    accumulated = run(accumulated_model, examples, tmp_path, "acc", hooks=[accumulated_grads], batch_size=2, grad_accum=2)
    # The claim: each step's gradient is the big batch's. (Adam then divides by √v, which turns the float
    # rounding of near-zero gradients into weight differences of a few 1e-6 at lr 1e-2: weights are
    # compared more loosely.)
    for step, (a_step, b_step) in enumerate(zip(big_grads.steps, accumulated_grads.steps, strict=True)):
        for (name, _), a, b in zip(big.named_parameters(), a_step, b_step):
            torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5, msg=f"step {step + 1}: {name}")
    for (name, a), b in zip(big.named_parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-5, msg=name)
    changed = [not torch.equal(a, b) for a, b in zip(big.parameters(), tiny_model.parameters())]
    assert all(changed)


def test_same_seed_same_weights(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)
    a = run(copy.deepcopy(tiny_model), examples, tmp_path, "a")
    b = run(copy.deepcopy(tiny_model), examples, tmp_path, "b")
    c = run(copy.deepcopy(tiny_model), examples, tmp_path, "c", seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_training_lowers_the_loss_and_writes_a_curve(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)
    run(tiny_model, examples, tmp_path, "curve", steps=40, lr=3e-3, batch_size=8)
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve.columns) == ["step", "loss", "penalty", "sam_loss", "lr", "tokens", "seconds", "kl", "vers_ce_delta"]
    assert curve["kl"].isna().all()  # measured only under training.kl_every
    assert curve["step"].tolist() == list(range(1, 41))
    assert curve["loss"].iloc[-5:].mean() < 0.7 * curve["loss"].iloc[:5].mean()


def test_only_parameters_that_require_grad_change(tiny_model, tokenizer, tiny_world, tmp_path):
    examples = tokenize_dataset(tiny_world["rotate_train"][:8], Prompter(tokenizer, TEMPLATE), True, 32)
    before = copy.deepcopy(tiny_model)
    for name, p in tiny_model.named_parameters():
        p.requires_grad_("mlp" in name)
    run(tiny_model, examples, tmp_path, "frozen")
    for (name, a), b in zip(tiny_model.named_parameters(), before.parameters()):
        assert torch.equal(a, b) != ("mlp" in name), name


def test_tensorboard_event_files_hold_the_curves_losses(tiny_model, tokenizer, tiny_world, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cofi.config.settings import ComputeSettings

    examples = tokenize_dataset(tiny_world["rotate_train"][:8], Prompter(tokenizer, TEMPLATE), True, 32)
    train(tiny_model, examples, TrainSettings(lr=1e-3, steps=4, batch_size=4, log_every=10), 0, 0,
          tmp_path / "loss.csv", compute=ComputeSettings(tensorboard=True), log=lambda _: None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    curve = pd.read_csv(tmp_path / "loss.csv")
    assert [step for step, _ in logged] == curve["step"].tolist() == [1, 2, 3, 4]
    assert [value for _, value in logged] == pytest.approx(curve["loss"].tolist(), rel=1e-5)
    assert {"train/lr", "train/tokens"} <= set(events.Tags()["scalars"])


class ScalarReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Records each read of a floating-point tensor's value by the host (``.item()``, ``float()``: on a GPU, a wait
    for the device). Integer reads (the host batch's token counts) do not wait for the device and are not kept."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_floating_point():
            self.reads += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", ["full", "sam", "l2"])
def test_a_step_leaves_its_losses_on_the_device_and_the_curve_reads_them_at_log_lines(method, tiny_model, tokenizer,
                                                                                    tiny_world, tmp_path):
    """Between log lines no step reads a loss, a penalty or a norm back to the host; the curve still has every step
    (the optimizer's own step is left out: torch's CPU AdamW reads its step count, its fused GPU kernel does not)."""
    from torch.utils._python_dispatch import _disable_current_modes

    from cofi.methods.penalty import DistanceToInit
    from cofi.training.sam import SAM
    from cofi.training.loop import Precision, Trainer

    examples = tokenize_dataset(tiny_world["rotate_train"][:16], Prompter(tokenizer, TEMPLATE), True, 32)
    names = [n for n, _ in tiny_model.named_parameters()]
    extensions = {"full": [], "sam": [SAM(0.05)], "l2": [DistanceToInit(tiny_model, names, 2, 1.0)]}[method]
    reads_per_step, plain_step, plain_optimizer_step = [], Trainer.step, Precision.step

    def watched_step(self, micro_batches):
        with ScalarReads() as reads:
            fields = plain_step(self, micro_batches)
        reads_per_step.append(reads.reads)
        return fields

    def unwatched_optimizer_step(self, optimizer):
        with _disable_current_modes():
            return plain_optimizer_step(self, optimizer)

    Trainer.step, Precision.step = watched_step, unwatched_optimizer_step
    try:
        run(tiny_model, examples, tmp_path, method, hooks=extensions, steps=6, log_every=3, grad_accum=2)
    finally:
        Trainer.step, Precision.step = plain_step, plain_optimizer_step
    assert reads_per_step == [0] * 6
    curve = pd.read_csv(tmp_path / f"{method}.csv")
    assert curve["step"].tolist() == [1, 2, 3, 4, 5, 6] and curve["loss"].notna().all()
    if method == "l2":
        assert (curve["penalty"].iloc[1:] > 0).all()
    if method == "sam":
        assert curve["sam_loss"].notna().all()
