"""The signal-to-noise pick (search.mode snr): Spectrum's measure of a matrix, the regions ranked by it, the job's
files, and what the tables, claims and bench-search make of a search that trains nothing."""

import json

import numpy as np
import pytest
import torch

from cofi.search.policy import Policy
from cofi.search.regions import DEFAULT_GROUPS, Region
from cofi.search.snr import matrix_snr, percentiles, rank_regions

N = 8
GROUPS = {"mha": ["q_proj", "k_proj", "v_proj"], "ffn": ["up_proj", "down_proj"]}


def test_matrix_snr_is_spectrums_measure_computed_apart():
    """The SNR written out with numpy: σ from the singular values' IQR, the Marchenko–Pastur edge σ(1 + √β), the
    values above it over those at or below it, over the largest."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(24, 40, generator=generator) + 3 * torch.outer(torch.ones(24), torch.linspace(0, 1, 40))
    values = np.linalg.svd(weight.double().numpy(), compute_uv=False)
    q25, q75 = np.percentile(values, [25, 75])
    edge = (q75 - q25) / 1.349 * (1 + np.sqrt(24 / 40))
    expected = values[values > edge].sum() / values[values <= edge].sum() / values.max()
    measured = matrix_snr(weight)
    assert measured["snr"] == pytest.approx(expected, rel=1e-9)
    assert measured["above_edge"] == int((values > edge).sum()) and measured["largest"] == pytest.approx(values.max())
    assert matrix_snr(weight.T)["snr"] == pytest.approx(expected, rel=1e-9)  # β is the short side over the long one


def test_a_stronger_low_rank_signal_raises_the_ratio_and_spectrums_scale_lowers_it():
    """Above the noise, a rank-2 signal's strength raises the ratio of the sums; Spectrum's division by the largest
    singular value turns that around once one spike dominates (what its 'SNR' measures is the spectrum's spread
    against its top): the docs say so, and this pins the measure to Spectrum's, not to a cleaner one."""
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(64, 64, generator=generator) / 8
    u, v = torch.randn(64, 2, generator=generator), torch.randn(2, 64, generator=generator)
    measured = [matrix_snr(noise + strength * u @ v / 64) for strength in (2, 8, 16)]
    ratios = [m["snr"] * m["largest"] for m in measured]
    assert ratios[0] < ratios[1] < ratios[2]
    assert measured[0]["snr"] > measured[1]["snr"] > measured[2]["snr"]


def test_percentiles_rank_within_each_projection_and_share_ties():
    snr = {(0, "q_proj"): 0.1, (1, "q_proj"): 0.3, (2, "q_proj"): 0.3, (3, "q_proj"): 0.2, (0, "up_proj"): 50.0}
    where = percentiles(snr)
    assert where[(0, "q_proj")] == 0 and where[(3, "q_proj")] == pytest.approx(1 / 3)
    assert where[(1, "q_proj")] == where[(2, "q_proj")] == pytest.approx(5 / 6)  # places 2 and 3 of 0..3
    assert where[(0, "up_proj")] == 0.5  # alone in its projection: a large SNR elsewhere does not count


def test_the_region_whose_matrices_rank_highest_is_picked_and_ties_go_to_the_smaller():
    # Layers 2 and 3 (the second quarter of 8) hold every FFN projection's highest SNR; attention is flat.
    snr = {(layer, p): (10.0 + layer if layer in (2, 3) else 1.0 + 0.01 * layer) if p in GROUPS["ffn"] else 0.5
           for layer in range(N) for p in GROUPS["mha"] + GROUPS["ffn"]}
    from cofi.search.policy import grid

    ranked = rank_regions(grid(("mha", "ffn"), N, 1), snr, GROUPS, N)
    assert ranked[0]["id"] == "r25-50_ffn" and ranked[0]["value"] == pytest.approx((6 / 7 + 1) / 2)
    assert [r["rank"] for r in ranked] == list(range(1, 22))
    # The attention-only regions all tie at 0.5: the quarters (fewer layers) before the halves.
    mha = [r for r in ranked if r["modules"] == ["mha"]]
    assert {r["value"] for r in mha} == {0.5} and [len(r["layers"]) for r in mha] == [2, 2, 2, 2, 4, 4, 4]
    with pytest.raises(ValueError, match="r0-50_mha: no SNR for the matrices"):
        rank_regions([Region.make(0, 0.5, ("mha",))], {(0, "up_proj"): 1.0}, GROUPS, N)


def test_the_jobs_rank_a_models_regions_and_name_the_run_that_trains_the_pick(tmp_path, tiny_model, tokenizer):
    """matrix-snr reads the weights file (every decoder projection), search-snr writes the result the tree's readers
    read: the pick, its run at the reference's lr, no trainings; the trace ranks the grid's regions."""
    from cofi.jobs.search import MatrixSnrJob, SearchSnrJob
    from cofi.models.loading import save_model
    from cofi.search.policy import first_candidates

    save_model(tiny_model, tokenizer, tmp_path / "model")
    MatrixSnrJob(model=str(tmp_path / "model"), out=str(tmp_path / "snr.csv"), log=lambda *_: None).execute()
    import pandas as pd

    frame = pd.read_csv(tmp_path / "snr.csv")
    layers = tiny_model.config.num_hidden_layers
    assert len(frame) == layers * 7 and set(frame["projection"]) == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                                     "gate_proj", "up_proj", "down_proj"}
    weight = tiny_model.model.layers[1].mlp.up_proj.weight
    row = frame[(frame["layer"] == 1) & (frame["projection"] == "up_proj")].iloc[0]
    assert row["snr"] == pytest.approx(matrix_snr(weight)["snr"], rel=1e-5)
    policy = Policy(mode="snr")
    runs = {c["id"]: f"region-{c['id']}" for c in first_candidates(policy, layers)}
    result = SearchSnrJob(task="bio", snr=str(tmp_path / "snr.csv"), policy=policy, groups=DEFAULT_GROUPS,
                          n_layers=layers, runs=runs, lr=3e-4, out_dir=str(tmp_path / "out"), log=lambda *_: None).execute()
    stored = json.loads((tmp_path / "out" / "result.json").read_text())
    assert stored["selected"] == result["selected"] == result["nodes"][0]["id"]
    assert (stored["run"], stored["lr"], stored["trained"], stored["criterion"]) == (runs[stored["selected"]], 3e-4, [], "snr")
    trace = pd.read_csv(tmp_path / "out" / "trace.csv")
    assert len(trace) == len(runs) and trace["value"].is_monotonic_decreasing and trace["selected"].sum() == 1
    assert (tmp_path / "out" / "tree.png").is_file() and "nothing trained" in (tmp_path / "out" / "table.md").read_text()


def test_claims_and_bench_search_read_an_snr_search(tmp_path):
    """The region claim has no selection values to compare; bench-search reads the snr pick's worth from its run's
    validation scores (trained after, as a candidate), and its cost from the singular values' job."""
    from cofi.analysis.claims import _region_parts
    from cofi.analysis.intervals import Bootstrap
    from cofi.devtools.bench import search_efficiency

    snr = {"task": "bio", "selected": "r25-50_ffn", "run": "region-r25-50_ffn", "lr": 3e-4, "scores": None,
           "criterion": "snr", "trained": [], "runs": [], "nodes": [{"id": "r25-50_ffn", "value": 0.9}]}
    parts = _region_parts([snr], ["bio"], {}, Bootstrap(100, 0))
    assert parts[0].note == "search.mode snr trains no candidate" and not parts[0].values
    tree = {"task": "bio", "selected": "r0-50_ffn", "run": "region-r0-50_ffn", "lr": 3e-4, "trained": ["r0-50_ffn"],
            "runs": ["region-r0-50_ffn"], "scores": {"uni": 80.0}}
    for name, result in (("snr", snr), ("tree", tree)):
        (tmp_path / name / "bio").mkdir(parents=True)
        (tmp_path / name / "bio" / "result.json").write_text(json.dumps(result))
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "matrix_snr.tsv").write_text("s\th:m:s\n6.5\t0:00:06\n")
    scores = tmp_path / "runs/region-r25-50_ffn/bio/seed0/val_scores.json"
    scores.parent.mkdir(parents=True)
    scores.write_text(json.dumps({"uni": {"bio": 77.0}}))
    table = search_efficiency({"snr": tmp_path / "snr", "tree": tmp_path / "tree"}, tmp_path / "benchmarks", 0,
                              runs=tmp_path / "runs").set_index("search")
    assert table.loc["snr", "trainings"] == 0 and table.loc["snr", "snr_s"] == 6.5
    assert table.loc["snr", "pick_uni"] == 77.0 and table.loc["snr", "uni_gap"] == 3.0
