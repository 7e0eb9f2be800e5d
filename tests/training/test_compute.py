"""How training computes: mixed precision, gradient checkpointing, resumable checkpoints (on CPU)."""

import copy

import pytest
import torch

from cofi.training import checkpoint
from cofi.methods.penalty import DistanceToInit
from cofi.methods.base import Extension
from cofi.training.sam import SAM
from cofi.config.settings import ComputeSettings, SettingsError, TrainSettings
from cofi.training.loop import train



@pytest.fixture
def examples(examples):
    return examples[:16]  # conftest's, shorter


def config(**overrides) -> TrainSettings:
    return TrainSettings(**{"lr": 1e-2, "steps": 6, "batch_size": 4, "warmup_ratio": 0.2, "log_every": 100, **overrides})


SEED = 1


def assert_same_weights(a, b, atol=0.0):
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(x, y, atol=atol, rtol=0 if atol == 0 else 1e-4, msg=name)


def test_gradient_checkpointing_trains_the_same_weights(tiny_model, examples, tmp_path):
    plain, recomputed = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    train(plain, examples, config(), SEED, 0, tmp_path / "a.csv", log=lambda _: None)
    train(recomputed, examples, config(), SEED, 0, tmp_path / "b.csv", log=lambda _: None,
          compute=ComputeSettings(gradient_checkpointing=True))
    assert any(getattr(module, "gradient_checkpointing", False) for module in recomputed.modules())
    assert_same_weights(plain, recomputed, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_float32_copies_and_restores_the_dtype(tiny_model, examples, tmp_path, precision):
    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    start = copy.deepcopy(half)
    train(half, examples, config(steps=8), SEED, 0, tmp_path / "c.csv", log=lambda _: None,
          compute=ComputeSettings(precision=precision))
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())  # saved as loaded
    assert all(not torch.equal(a, b) for a, b in zip(half.parameters(), start.parameters()))
    losses = [float(line.split(",")[1]) for line in (tmp_path / "c.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.8 * losses[0]


def test_fp16_with_sam_is_refused():
    with pytest.raises(SettingsError, match="run x: fp16 cannot train with SAM"):
        ComputeSettings(precision="fp16").check_run(True, "run x")
    ComputeSettings(precision="bf16").check_run(True, "run x")
    ComputeSettings(precision="fp16").check_run(False, "run x")


class Preempted(Exception):
    pass


class KillAt(Extension):
    """Raises at a given step: the job dies mid-run, as a preempted one does."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def after_backward(self):
        self.calls += 1
        if self.calls == self.step:
            raise Preempted


@pytest.mark.parametrize("options", [{}, {"grad_accum": 2, "batch_size": 2}, {"sam_rho": 0.05}, {"penalty": True}])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(tiny_model, examples, tmp_path, options):
    options = dict(options)
    penalty, sam_rho = options.pop("penalty", False), options.pop("sam_rho", None)
    cfg = config(steps=9, **options)
    compute = ComputeSettings(checkpoint_every=3)
    identity = {"run": "x"}

    def extensions(model):
        names = [n for n, _ in model.named_parameters()]
        return ([DistanceToInit(model, names, 2, 0.1)] if penalty else []) + ([SAM(sam_rho)] if sam_rho else [])

    whole = copy.deepcopy(tiny_model)
    train(whole, examples, cfg, SEED, 0, tmp_path / "whole.csv", log=lambda _: None, extensions=extensions(whole))

    directory = tmp_path / "checkpoints"
    first = copy.deepcopy(tiny_model)
    with pytest.raises(Preempted):
        train(first, examples, cfg, SEED, 0, tmp_path / "resumed.csv", log=lambda _: None, compute=compute,
              extensions=[*extensions(first), KillAt(8)], checkpoint_dir=directory, identity=identity)
    assert [p.name for p in directory.iterdir()] == ["step-00000006"]  # only the newest is kept

    messages = []
    second = copy.deepcopy(tiny_model)  # a fresh process: the base weights again
    summary = train(second, examples, cfg, SEED, 0, tmp_path / "resumed.csv", log=messages.append, compute=compute,
                    extensions=extensions(second), checkpoint_dir=directory, identity=identity)
    assert summary["resumed_at_step"] == 6 and any("resuming" in m for m in messages)
    assert_same_weights(whole, second)  # bit for bit on CPU
    whole_curve = [line.split(",")[:6] for line in (tmp_path / "whole.csv").read_text().splitlines()]
    resumed_curve = [line.split(",")[:6] for line in (tmp_path / "resumed.csv").read_text().splitlines()]
    assert whole_curve == resumed_curve  # every step's loss, the ones before the checkpoint too


def test_a_checkpoint_of_other_settings_is_not_resumed(tiny_model, examples, tmp_path):
    directory = tmp_path / "checkpoints"
    cfg, compute = config(steps=6), ComputeSettings(checkpoint_every=2)
    with pytest.raises(Preempted):
        train(copy.deepcopy(tiny_model), examples, cfg, SEED, 0, tmp_path / "a.csv", log=lambda _: None, compute=compute,
              extensions=[KillAt(5)], checkpoint_dir=directory, identity={"params": {"lr": 0.01}})
    assert checkpoint.latest(directory, {"params": {"lr": 0.01}, "train": {}}) is None  # the identity includes the config
    messages = []
    summary = train(copy.deepcopy(tiny_model), examples, cfg, SEED, 0, tmp_path / "b.csv", log=messages.append,
                    compute=compute, checkpoint_dir=directory, identity={"params": {"lr": 0.02}})
    assert summary["resumed_at_step"] is None and not any("resuming" in m for m in messages)


def test_an_incomplete_checkpoint_is_ignored(tmp_path):
    directory = tmp_path / "checkpoints"
    (directory / ".partial-step-00000004").mkdir(parents=True)
    (directory / "step-00000008").mkdir()  # no settings.json: its writing was cut short
    assert checkpoint.latest(directory, {}) is None


def test_gradient_checkpointing_with_frozen_lower_layers_still_trains_the_first_layer(tiny_model, examples, tmp_path):
    """Non-reentrant checkpointing: the first layer trains though nothing below it needs gradients
    (a reentrant checkpoint would give its weights none)."""
    from cofi.search.regions import Region, freeze_outside

    groups = {"ffn": ["up_proj", "down_proj"]}
    plain, recomputed = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    names = freeze_outside(plain, Region.make(0, 0.5, ["ffn"]), groups)
    assert freeze_outside(recomputed, Region.make(0, 0.5, ["ffn"]), groups) == names
    assert all(".layers.0." in name for name in names)
    train(plain, examples, config(), SEED, 0, tmp_path / "a.csv", log=lambda _: None)
    train(recomputed, examples, config(), SEED, 0, tmp_path / "b.csv", log=lambda _: None,
          compute=ComputeSettings(gradient_checkpointing=True))
    start = dict(tiny_model.named_parameters())
    trained = dict(recomputed.named_parameters())
    assert all(not torch.equal(trained[name], start[name]) for name in names)
    assert_same_weights(plain, recomputed, atol=1e-6)
    checkpointed = [m for m in recomputed.modules() if getattr(m, "gradient_checkpointing", False)]
    assert checkpointed and all(m._gradient_checkpointing_func.keywords == {"use_reentrant": False} for m in checkpointed)
