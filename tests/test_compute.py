"""How training computes: mixed precision, gradient checkpointing, resumable checkpoints (on CPU)."""

import copy

import pytest
import torch

from cofi import checkpoint
from cofi.methods.penalty import DistanceToInit
from cofi.train import TrainConfig, tokenize_dataset, train

from conftest import TEMPLATE


@pytest.fixture
def examples(tokenizer, tiny_world):
    return tokenize_dataset(tiny_world["rotate_train"][:16], tokenizer, TEMPLATE, True, 32)


def config(**overrides) -> TrainConfig:
    return TrainConfig(**{"lr": 1e-2, "steps": 6, "batch_size": 4, "warmup_ratio": 0.2, "seed": 1, "log_every": 100, **overrides})


def assert_same_weights(a, b, atol=0.0):
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(x, y, atol=atol, rtol=0 if atol == 0 else 1e-4, msg=name)


def test_gradient_checkpointing_trains_the_same_weights(tiny_model, examples, tmp_path):
    plain, recomputed = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    train(plain, examples, config(), 0, tmp_path / "a.csv", log=lambda _: None)
    train(recomputed, examples, config(gradient_checkpointing=True), 0, tmp_path / "b.csv", log=lambda _: None)
    assert any(getattr(module, "gradient_checkpointing", False) for module in recomputed.modules())
    assert_same_weights(plain, recomputed, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_float32_copies_and_restores_the_dtype(tiny_model, examples, tmp_path, precision):
    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    start = copy.deepcopy(half)
    train(half, examples, config(precision=precision, steps=8), 0, tmp_path / "c.csv", log=lambda _: None)
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())  # saved as loaded
    assert all(not torch.equal(a, b) for a, b in zip(half.parameters(), start.parameters()))
    losses = [float(line.split(",")[1]) for line in (tmp_path / "c.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.8 * losses[0]


def test_fp16_with_sam_is_refused():
    with pytest.raises(ValueError, match="fp16 with SAM"):
        config(precision="fp16", sam_rho=0.05)
    with pytest.raises(ValueError, match="precision 'fp8'"):
        config(precision="fp8")


class Preempted(Exception):
    pass


class KillAt:
    """A hook that raises at a given step: the job dies mid-run, as a preempted one does."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def attach(self, optimizer):
        pass

    def after_backward(self):
        self.calls += 1
        if self.calls == self.step:
            raise Preempted


@pytest.mark.parametrize("options", [{}, {"grad_accum": 2, "batch_size": 2}, {"sam_rho": 0.05}, {"penalty": True}])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(tiny_model, examples, tmp_path, options):
    options = dict(options)
    penalty = options.pop("penalty", False)
    cfg = config(steps=9, checkpoint_every=3, **options)
    settings = {"run": "x"}

    def penalties(model):
        names = [n for n, _ in model.named_parameters()]
        return (DistanceToInit(model, names, 2, 0.1),) if penalty else ()

    whole = copy.deepcopy(tiny_model)
    train(whole, examples, cfg, 0, tmp_path / "whole.csv", log=lambda _: None, penalties=penalties(whole))

    directory = tmp_path / "checkpoints"
    first = copy.deepcopy(tiny_model)
    with pytest.raises(Preempted):
        train(first, examples, cfg, 0, tmp_path / "resumed.csv", log=lambda _: None, hooks=(KillAt(8),),
              penalties=penalties(first), checkpoint_dir=directory, settings=settings)
    assert [p.name for p in directory.iterdir()] == ["step-00000006"]  # only the newest is kept

    messages = []
    second = copy.deepcopy(tiny_model)  # a fresh process: the base weights again
    summary = train(second, examples, cfg, 0, tmp_path / "resumed.csv", log=messages.append,
                    penalties=penalties(second), checkpoint_dir=directory, settings=settings)
    assert summary["resumed_at_step"] == 6 and any("resuming" in m for m in messages)
    assert_same_weights(whole, second)  # bit for bit on CPU
    whole_curve = [line.split(",")[:6] for line in (tmp_path / "whole.csv").read_text().splitlines()]
    resumed_curve = [line.split(",")[:6] for line in (tmp_path / "resumed.csv").read_text().splitlines()]
    assert whole_curve == resumed_curve  # every step's loss, the ones before the checkpoint too


def test_a_checkpoint_of_other_settings_is_not_resumed(tiny_model, examples, tmp_path):
    directory = tmp_path / "checkpoints"
    cfg = config(steps=6, checkpoint_every=2)
    with pytest.raises(Preempted):
        train(copy.deepcopy(tiny_model), examples, cfg, 0, tmp_path / "a.csv", log=lambda _: None,
              hooks=(KillAt(5),), checkpoint_dir=directory, settings={"params": {"lr": 0.01}})
    assert checkpoint.latest(directory, {"params": {"lr": 0.01}, "train": {}}) is None  # settings include the config
    messages = []
    summary = train(copy.deepcopy(tiny_model), examples, cfg, 0, tmp_path / "b.csv", log=messages.append,
                    checkpoint_dir=directory, settings={"params": {"lr": 0.02}})
    assert summary["resumed_at_step"] is None and not any("resuming" in m for m in messages)


def test_an_incomplete_checkpoint_is_ignored(tmp_path):
    directory = tmp_path / "checkpoints"
    (directory / ".partial-step-00000004").mkdir(parents=True)
    (directory / "step-00000008").mkdir()  # no settings.json: its writing was cut short
    assert checkpoint.latest(directory, {}) is None
