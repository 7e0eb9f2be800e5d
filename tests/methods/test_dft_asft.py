"""DFT and ASFT: the trainer's gradient is the probability-weighted one (not plain cross-entropy's), and ASFT adds
λ·KL(model ‖ base) against a frozen copy of the starting model."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from cofi.config.runs import Run
from cofi.config.settings import ComputeSettings, TrainSettings
from cofi.data.prompts import IGNORE_INDEX
from cofi.methods import METHODS, Inputs, MethodError
from cofi.training.loop import Trainer, collate


def gradients_of(model, extensions, batch):
    """The trainer's gradients of one computation on ``batch`` (what a step would apply)."""
    trainer = Trainer(model, TrainSettings(lr=1e-3, steps=1, batch_size=len(batch["input_ids"])), 0, ComputeSettings(),
                      extensions)
    n_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    fields = trainer._compute([batch], n_tokens)
    return {name: p.grad.clone() for name, p in model.named_parameters()}, float(fields["loss"]), n_tokens


def hand_loss(model, batch, weighted: bool):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labelled = batch["labels"][:, 1:] != IGNORE_INDEX
    cross_entropy = F.cross_entropy(logits[labelled], batch["labels"][:, 1:][labelled], reduction="none")
    weights = torch.exp(-cross_entropy).detach() if weighted else torch.ones_like(cross_entropy)
    return (weights * cross_entropy).sum(), logits[labelled]


def setup_of(method, model, **params):
    run = Run(name=method, method=method, params=params, train=TrainSettings())
    return METHODS[method].setup(model, run, Inputs(seed=0, log=lambda _: None, load_model=None, paths={},
                                                    tokenize=None))


@pytest.fixture
def batch(examples, tokenizer):
    return collate(examples[:8], tokenizer.pad_token_id)


def test_dft_trains_on_the_probability_weighted_gradient(tiny_model, batch):
    dft = copy.deepcopy(tiny_model)
    setup = setup_of("dft", dft)
    grads, loss, n_tokens = gradients_of(dft, setup.extensions, batch)
    by_hand, _ = hand_loss(copy.deepcopy(tiny_model), batch, weighted=True)
    reference = copy.deepcopy(tiny_model)
    (hand_loss(reference, batch, weighted=True)[0] / n_tokens).backward()
    assert math.isclose(loss, float(by_hand.detach()) / n_tokens, rel_tol=1e-5)
    for name, parameter in reference.named_parameters():
        torch.testing.assert_close(grads[name], parameter.grad, rtol=1e-4, atol=1e-7, msg=name)
    plain, plain_loss, _ = gradients_of(copy.deepcopy(tiny_model), [], batch)
    assert plain_loss > loss  # every weight is a probability below 1
    assert any(not torch.allclose(grads[name], plain[name], rtol=1e-2) for name in grads)  # the weights matter


def test_asft_is_dft_plus_the_kl_to_the_frozen_start(tiny_model, batch):
    model = copy.deepcopy(tiny_model)
    setup = setup_of("asft", model, **{"lambda": 0.5})
    anchored = setup.extensions[0]
    _, at_start, n_tokens = gradients_of(model, setup.extensions, batch)
    assert math.isclose(at_start, float(hand_loss(copy.deepcopy(tiny_model), batch, True)[0].detach()) / n_tokens, rel_tol=1e-5)
    with torch.no_grad():  # the model moves, its frozen start does not
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    assert all(torch.equal(a, b) for a, b in zip(anchored.reference.parameters(), tiny_model.parameters()))
    _, moved, _ = gradients_of(model, setup.extensions, batch)
    dft, logits = hand_loss(model, batch, True)
    base = hand_loss(tiny_model, batch, True)[1]
    kl = (F.softmax(logits, -1) * (F.log_softmax(logits, -1) - F.log_softmax(base, -1))).sum()
    assert float(kl.detach()) > 0 and math.isclose(moved, float((dft + 0.5 * kl).detach()) / n_tokens, rel_tol=1e-5)


def test_asft_refuses_a_sharded_job(tiny_model, monkeypatch):
    monkeypatch.setattr("cofi.training.distributed.active", lambda: True)
    with pytest.raises(MethodError, match="asft: its base model copy is not sharded"):
        setup_of("asft", copy.deepcopy(tiny_model))
