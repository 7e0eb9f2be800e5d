"""Loss landscapes: the centre is the model's own loss, a quadratic has the curvature it should."""

import copy

import numpy as np
import pytest
import torch

from cofi.data.prompts import Prompter
from cofi.analysis.landscape import batch_loss, filter_normalised_direction, landscape
from cofi.analysis.sharpness import sharpness_table, spearman
from cofi.training.loop import collate, tokenize_dataset

from conftest import TEMPLATE


class Quadratic(torch.nn.Module):
    """L(w) = ½ Σ a ⊙ w², so along d: L(α) = L(0) + α Σ a w d + ½ α² Σ a d² (curvature Σ a d²)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[1.0, 2.0, -1.0], [3.0, -1.0, 0.5]]))
        self.a = torch.tensor([[1.0, 2.0, 0.5], [0.5, 3.0, 1.0]])

    def loss(self) -> float:
        return float(0.5 * (self.a * self.w.detach() ** 2).sum())


def test_filter_normalised_rows_have_the_weights_norms_and_vectors_stay_put(tiny_model):
    direction = filter_normalised_direction(tiny_model, seed=3)
    for name, p in tiny_model.named_parameters():
        if p.dim() < 2:
            assert not direction[name].any(), name
        else:
            torch.testing.assert_close(direction[name].norm(dim=1), p.detach().norm(dim=1), msg=name)
    scaled = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in scaled.parameters():
            p.mul_(2.0)
    again = filter_normalised_direction(scaled, seed=3)  # same draw, scaled to the other model's weights
    for name in direction:
        torch.testing.assert_close(again[name], 2.0 * direction[name], msg=name)


def test_quadratic_curvature_and_rise_by_hand():
    model = Quadratic()
    result = landscape(model, {"q": lambda m: m.loss()}, span=1.0, points_1d=11, points_2d=5, radius=0.4, direction_seed=0)
    d = filter_normalised_direction(model, 0)["w"]
    w, a = model.w.detach(), model.a
    slope, curvature = float((a * w * d).sum()), float((a * d ** 2).sum())
    figures = result["sharpness"]["q"]
    assert figures["curvature"] == pytest.approx(curvature, rel=1e-4)
    alphas = np.linspace(-1, 1, 11)
    inside = alphas[np.abs(alphas) <= 0.4 + 1e-12]
    assert figures["rise_1d"] == pytest.approx(max(slope * x + 0.5 * curvature * x ** 2 for x in inside), rel=1e-4)
    assert result["loss_1d"]["q"] == pytest.approx([model.loss() + slope * x + 0.5 * curvature * x ** 2 for x in alphas], rel=1e-5)
    assert torch.equal(model.w.detach(), w)  # the weights are restored


def test_centre_is_the_models_loss_and_weights_are_restored(tiny_model, tokenizer, tiny_world):
    batch = collate(tokenize_dataset(tiny_world["rotate_train"][:8], Prompter(tokenizer, TEMPLATE), True, 32), 0)
    loss = batch_loss(batch)
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    result = landscape(tiny_model, {"spec": loss}, span=0.5, points_1d=5, points_2d=3, radius=0.25, direction_seed=1)
    assert result["centre"]["spec"] == pytest.approx(loss(tiny_model), rel=1e-6)
    assert result["loss_2d"]["spec"][1][1] == pytest.approx(loss(tiny_model), rel=1e-6)
    assert all(torch.equal(p, before[n]) for n, p in tiny_model.named_parameters())
    assert max(result["loss_1d"]["spec"]) > result["centre"]["spec"]  # moving half a weight norm away costs loss


def test_grids_must_be_odd_and_radius_inside():
    with pytest.raises(ValueError, match="odd number of points"):
        landscape(Quadratic(), {"q": lambda m: m.loss()}, 1.0, 10, 5, 0.5, 0)
    with pytest.raises(ValueError, match="radius"):
        landscape(Quadratic(), {"q": lambda m: m.loss()}, 1.0, 11, 5, 2.0, 0)


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) vs (2, 1, 4, 3): 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman([1, 2, 3, 4], [5, 1, 9, 7]) == pytest.approx(0.6)
    assert np.isnan(spearman([1, 2], [1, 2]))


def test_sharpness_table_correlates_over_fine_tuned_runs():
    def result(run, rise):
        return {"run": run, "task": "t", "seed": 0,
                "sharpness": {"spec": {"rise_1d": rise, "rise_2d": rise, "grad": rise, "curvature": -rise}}}

    landscapes = [result("base", 9.0), result("a", 1.0), result("b", 2.0), result("c", 3.0)]
    vers = {("base", "t"): 90.0, ("a", "t"): 80.0, ("b", "t"): 60.0, ("c", "t"): 50.0}
    table, correlation = sharpness_table(landscapes, vers, {"t": 90.0})
    assert table["vers_drop"].tolist() == [0.0, 10.0, 30.0, 40.0]
    row = correlation.iloc[0]
    assert (row["runs"], row["spec_rise_1d"], row["spec_curvature"]) == (3, pytest.approx(1.0), pytest.approx(-1.0))
