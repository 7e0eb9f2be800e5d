"""KL(base ‖ model) and the versatility cross-entropy during training: measured against the model the run started
from, logged in loss.csv, and a budget that stops the run with the weights it had under it."""

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from cofi.config.settings import TrainSettings
from cofi.data.prompts import IGNORE_INDEX, Prompter
from cofi.training.forgetting import REFERENCE_FILE, ForgettingProbe, Monitor
from cofi.training.loop import collate, tokenize_dataset, train

from conftest import TEMPLATE


@pytest.fixture
def probe_batches(tokenizer, tiny_world):
    prompter = Prompter(tokenizer, TEMPLATE)
    task = tokenize_dataset(tiny_world["rotate_val"][:8], prompter, True, 32)
    vers = tokenize_dataset(tiny_world["reason_val"][:4] + tiny_world["instruct_val"][:4], prompter, True, 32)
    pad = tokenizer.pad_token_id
    return [collate(task[:5], pad), collate(task[5:], pad)], [collate(vers, pad)]


def kl_by_hand(base, model, batches) -> float:
    """Σ_v p_base (log p_base − log p_model) per labelled token, written out plainly."""
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            mask = batch["labels"][:, 1:] != IGNORE_INDEX
            log_p = [F.log_softmax(m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
                                   .double(), -1)[mask] for m in (base, model)]
            total += float((log_p[0].exp() * (log_p[0] - log_p[1])).sum())
            count += int(mask.sum())
    return total / count


def cross_entropy_by_hand(model, batches) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)).double(), batch["labels"][:, 1:].reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return total / count


def run(model, examples, probe, tmp_path, steps=6, lr=3e-3):
    settings = TrainSettings(lr=lr, steps=steps, batch_size=8, warmup_ratio=0.0, log_every=100, kl_every=probe.every)
    summary = train(model, examples, settings, 0, 0, tmp_path / "loss.csv", forgetting=probe, log=lambda _: None)
    return summary, pd.read_csv(tmp_path / "loss.csv")


def test_the_kl_is_to_the_model_the_run_started_from(tiny_model, examples, probe_batches, tmp_path):
    base = copy.deepcopy(tiny_model)
    summary, curve = run(tiny_model, examples, ForgettingProbe(*probe_batches, every=3), tmp_path)
    measured = curve.dropna(subset=["kl"])
    assert list(measured["step"]) == [3, 6] and summary["forgetting"]["measurements"] == 2
    final = measured.iloc[-1]
    assert final["kl"] > 1e-3  # six steps at 3e-3 move the model
    assert math.isclose(final["kl"], kl_by_hand(base, tiny_model, probe_batches[0]), rel_tol=1e-4)
    assert math.isclose(final["vers_ce_delta"], cross_entropy_by_hand(tiny_model, probe_batches[1])
                        - cross_entropy_by_hand(base, probe_batches[1]), rel_tol=1e-4, abs_tol=1e-6)
    assert curve["kl"].isna().sum() == 4  # measured on its steps only


def test_a_kl_budget_stops_the_run_with_the_weights_of_its_last_measurement_under_it(tiny_model, examples,
                                                                                   probe_batches, tmp_path):
    base = copy.deepcopy(tiny_model)
    _, curve = run(copy.deepcopy(tiny_model), examples, ForgettingProbe(*probe_batches, every=1), tmp_path / "free")
    kl = curve.set_index("step")["kl"]
    assert kl.is_monotonic_increasing  # the tiny run drifts steadily away from its start
    budget = (kl[3] + kl[4]) / 2
    summary, curve = run(tiny_model, examples, ForgettingProbe(*probe_batches, every=1, max_kl=budget),
                         tmp_path / "budget")
    assert summary["forgetting"]["stopped_at_step"] == 4 and summary["forgetting"]["kept_step"] == 3
    assert list(curve["step"]) == [1, 2, 3, 4]
    # the model handed back is step 3's: its KL is the one measured there, under the budget
    assert math.isclose(kl_by_hand(base, tiny_model, probe_batches[0]), kl[3], rel_tol=1e-4)
    tight = copy.deepcopy(base)
    summary, _ = run(tight, examples, ForgettingProbe(*probe_batches, every=1, max_kl=kl[1] / 2), tmp_path / "tight")
    assert summary["forgetting"]["kept_step"] == 0  # over at the first measurement: the starting weights
    assert all(torch.equal(a, b) for a, b in zip(tight.state_dict().values(), base.state_dict().values()))


def test_a_resumed_run_compares_with_the_stored_reference(tiny_model, probe_batches, tmp_path):
    from contextlib import nullcontext

    probe = ForgettingProbe(*probe_batches, every=1)
    first = Monitor(probe, tiny_model, nullcontext)
    first.reference(tmp_path / REFERENCE_FILE)
    with torch.no_grad():
        for parameter in tiny_model.parameters():
            parameter.add_(0.05)
    resumed = Monitor(probe, tiny_model, nullcontext)
    resumed.reference(tmp_path / REFERENCE_FILE)  # read, not recomputed from the changed model
    assert all(torch.equal(a, b) for a, b in zip(first.base_log_probs, resumed.base_log_probs))
    assert resumed.measure(1)["kl"] > 0 and Monitor(probe, tiny_model, nullcontext).base_log_probs == []


def test_the_loss_plot_draws_the_forgetting_curves_beside_the_loss(tmp_path, monkeypatch):
    from cofi.analysis import plots

    watched, plain = tmp_path / "watched.csv", tmp_path / "plain.csv"
    watched.write_text("step,loss,penalty,sam_loss,lr,tokens,seconds,kl,vers_ce_delta\n"
                       "1,2.0,0,,0.001,10,0.1,,\n2,1.5,0,,0.001,10,0.2,0.03,0.01\n")
    plain.write_text("step,loss,penalty,sam_loss,lr,tokens,seconds\n1,2.1,0,,0.001,10,0.1\n")
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, stem: drawn.append(figure) or [])
    plots.plot_loss_curves({"full": watched, "old": plain}, "bio", tmp_path / "loss")
    plots.plot_loss_curves({"old": plain}, "bio", tmp_path / "loss")
    with_kl, without = drawn
    assert [axis.get_ylabel() for axis in with_kl.axes] == [
        "training loss (response tokens)", "KL(base ‖ model), task prompts", "Δ cross-entropy, versatility"]
    assert [len(axis.lines) for axis in with_kl.axes] == [2, 1, 1] and len(without.axes) == 1
    assert list(with_kl.axes[1].lines[0].get_xdata()) == [2]
