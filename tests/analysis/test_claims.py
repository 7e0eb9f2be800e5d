"""The claims table (cofi/analysis/claims.py) from hand-made numbers: every verdict rule, each way."""

import zlib

import numpy as np
import pandas as pd
import pytest

from cofi.analysis.claims import Part, claims_frame, claims_markdown, interval_verdict, measure, threshold_verdict
from cofi.analysis.stats import spearman_critical
from cofi.config.settings import ClaimRows

ROWS = ClaimRows(cofitune="cofitune_grad", full="full", full_tuned="sft_tuned", sam="full_sam", equal_compute="full_2x",
                 old_data=("replay",))  # the default config's rows
ITEMS = 400  # per suite: enough that the intervals of the clear cases below are narrow


def items(suite: str, task: str, score: float, n: int = ITEMS, order_seed: int = 0) -> list[float]:
    """``n`` pass/fail items scoring ``score`` %: the items passed are the first of a fixed order per suite, so a
    row that scores more passes a superset of another's items (as similar models do; a paired comparison sees it).
    Another ``order_seed`` passes other items."""
    order = np.random.default_rng([zlib.crc32(f"{suite}:{task}".encode()), order_seed]).permutation(n)
    return [float(rank < round(score / 100 * n)) for rank in order]


def record(method, task, seed, spec, vers, n=ITEMS, order_seed=0):
    return {"method": method, "task": task, "seed": seed, "split": "test", "spec": spec, "know": vers, "reason": vers,
            "instruct": vers, "vers": vers, "uni": (spec + vers) / 2,
            "item_scores": {"spec": items("spec", task, spec, n, order_seed),
                            **{d: items(d, "", vers, n, order_seed) for d in ("know", "reason", "instruct")}}}


def frame(rows: dict[str, dict[str, list[tuple[float, float]]]], base: dict[str, tuple[float, float]],
          n: int = ITEMS) -> pd.DataFrame:
    """Per-seed test rows with their items: {method: {task: [(spec, vers) per seed]}}, and the base model's (spec,
    vers) per task (Know, Reason and Instruct each score Vers)."""
    records = [record("base", t, None, s, v, n) for t, (s, v) in base.items()]
    for method, by_task in rows.items():
        for task, seeds in by_task.items():
            records += [record(method, task, seed, s, v, n) for seed, (s, v) in enumerate(seeds)]
    return pd.DataFrame(records)


def verdicts(per_seed, **kwargs):
    return {c["claim"]: c["verdict"] for c in measure(per_seed, ROWS, **kwargs)}


BASE = {"bio": (0.0, 100.0), "rotate": (0.0, 100.0)}


def test_the_interval_rule_both_ways():
    assert interval_verdict(Part("t", "x", estimate=97.0, low=95.0, high=99.0), 95) == "holds"  # whole interval ≥ 95
    assert interval_verdict(Part("t", "x", estimate=96.0, low=94.9, high=97.0), 95) == "unclear"
    assert interval_verdict(Part("t", "x", estimate=90.0, low=88.0, high=94.9), 95) == "fails"
    assert interval_verdict(Part("t", "x", estimate=1.0, low=0.0, high=2.0), 0, strict=True) == "unclear"  # "more"
    assert interval_verdict(Part("t", "x", estimate=-1.0, low=-2.0, high=0.0), 0, strict=True) == "fails"
    assert interval_verdict(Part("t", "x", (95.0,), estimate=95.0), 95) == "unclear"  # no interval: no verdict


def test_one_seed_the_old_rule_calls_holds_and_the_new_one_unclear():
    """One seed, 30 items per suite: CoFiTune keeps 96 % of the base model's Vers. The old rule has no spread to go
    by and says "holds"; the items say the share could be anywhere from about 90 % to 100 %: unclear. With 3000
    items per suite the same 96 % holds."""
    for n, new in ((30, "unclear"), (3000, "holds")):
        per_seed = frame({"cofitune_grad": {"bio": [(95.0, 96.0 + 2 / 3)]}}, {"bio": (0.0, 100.0)}, n=n)
        claim = next(c for c in measure(per_seed, ROWS) if c["claim"] == "vers_kept")
        part = claim["parts"][0]
        assert part["old_verdict"] == claim["old_verdict"] == "holds"
        assert part["verdict"] == claim["verdict"] == new, (n, part["part"])
        assert part["part"].low < 96.7 < part["part"].high


def test_the_threshold_rule_by_mean_and_one_std():
    assert threshold_verdict(Part("t", "x", (96.0, 98.0)), 95) == "holds"     # 97 - 1.4 >= 95
    assert threshold_verdict(Part("t", "x", (94.0, 98.0)), 95) == "unclear"   # 96 - 2.8 < 95 <= 96 + 2.8
    assert threshold_verdict(Part("t", "x", (90.0, 91.0)), 95) == "fails"     # 90.5 + 0.7 < 95
    assert threshold_verdict(Part("t", "x", (95.0,)), 95) == "holds"          # one seed: no spread
    assert threshold_verdict(Part("t", "x", (0.0, 0.0)), 0, strict=True) == "fails"  # "more" needs more


def test_cofitune_that_forgets_nothing_and_learns_everything_holds_every_cofitune_claim():
    per_seed = frame({
        "cofitune_grad": {"bio": [(95.0, 99.0), (96.0, 98.0)], "rotate": [(99.0, 99.0), (98.0, 97.0)]},
        "full": {"bio": [(100.0, 40.0), (100.0, 45.0)], "rotate": [(100.0, 60.0), (100.0, 55.0)]},
        "sft_tuned": {"bio": [(100.0, 50.0), (100.0, 52.0)], "rotate": [(100.0, 66.0), (100.0, 64.0)]},
        "l2": {"bio": [(90.0, 80.0), (92.0, 82.0)], "rotate": [(99.0, 70.0), (99.0, 72.0)]},
        "replay": {"bio": [(100.0, 99.0), (100.0, 99.0)], "rotate": [(100.0, 99.0), (100.0, 99.0)]},  # old data: left out
    }, BASE)
    found = verdicts(per_seed)
    assert found["vers_kept"] == found["spec_kept"] == found["vers_gain"] == found["best_uni"] == "holds"
    assert found["sam_forgets_less"] == "not tested"  # no full_sam / full_2x rows in this experiment
    assert found["paper_region"] == found["sharp_forgets"] == "not tested"


def test_cofitune_that_learns_little_fails_the_spec_claim_and_the_best_uni_claim():
    per_seed = frame({
        "cofitune_grad": {"bio": [(20.0, 92.0), (22.0, 91.0)]},
        "full": {"bio": [(100.0, 43.0), (100.0, 44.0)]},
        "sft_tuned": {"bio": [(100.0, 43.0), (100.0, 44.0)]},
        "l2": {"bio": [(95.0, 80.0), (96.0, 81.0)]},
    }, {"bio": (0.0, 100.0)})
    found = verdicts(per_seed)
    assert found["spec_kept"] == "fails" and found["best_uni"] == "fails"
    assert found["vers_kept"] == "fails"   # 91.5 % of the base's Vers, under 95
    assert found["vers_gain"] == "holds"   # but far above Full SFT's Vers


def test_a_claim_that_holds_against_one_reference_and_fails_against_the_other_is_mixed():
    per_seed = frame({
        "cofitune_grad": {"bio": [(60.0, 90.0), (60.0, 90.0)]},
        "full": {"bio": [(100.0, 40.0), (100.0, 40.0)]},       # Vers +125 %: holds
        "sft_tuned": {"bio": [(70.0, 85.0), (70.0, 85.0)]},    # Vers +5.9 %: fails
    }, {"bio": (0.0, 100.0)})
    claim = next(c for c in measure(per_seed, ROWS) if c["claim"] == "vers_gain")
    assert [j["verdict"] for j in claim["parts"]] == ["holds", "fails"] and claim["verdict"] == "mixed"


@pytest.mark.parametrize("sam_vers, verdict", [((60.0, 62.0, 61.0), "holds"), ((40.0, 42.0, 41.0), "fails"),
                                               ((45.0, 55.0, 50.0), "unclear")])
def test_sam_against_adamw_at_equal_compute_both_ways(sam_vers, verdict):
    per_seed = frame({"full_sam": {"bio": [(100.0, v) for v in sam_vers]},
                      "full_2x": {"bio": [(100.0, v) for v in (50.0, 51.0, 49.0)]}}, {"bio": (0.0, 100.0)})
    claim = next(c for c in measure(per_seed, ROWS) if c["claim"] == "sam_forgets_less")
    assert claim["parts"][0]["verdict"] == verdict
    assert claim["verdict"] == verdict


def test_the_paper_region_claim_reads_the_search_trace_and_its_candidates_items():
    per_seed = frame({"full": {"bio": [(100.0, 40.0)]}}, {"bio": (0.0, 100.0)})

    def search(task, values, selected):
        return {"task": task, "selected": selected, "criterion": "uni",
                "nodes": [{"id": "root", "value": 0.0}] + [{"id": k, "value": v, "score_file": f"{task}/{k}.json"}
                                                          for k, v in values.items()]}

    def rows(task, values):  # each candidate's validation row, Uni as the trace has it (Spec = Vers)
        return {f"{task}/{k}.json": record(k, task, 0, v, v) for k, v in values.items()}

    best = search("bio", {"r25-50_ffn": 70.0, "r0-50_mha-ffn": 65.0}, "r25-50_ffn")
    worse = search("rotate", {"r25-50_ffn": 60.0, "r0-25_ffn": 75.0}, "r0-25_ffn")
    close = search("bio", {"r25-50_ffn": 70.0, "r0-50_mha-ffn": 69.5}, "r25-50_ffn")
    untried = search("bio", {"r0-50_mha-ffn": 65.0}, "r0-50_mha-ffn")
    items = {**rows("bio", {"r25-50_ffn": 70.0, "r0-50_mha-ffn": 65.0}), **rows("rotate", {"r25-50_ffn": 60.0,
                                                                                           "r0-25_ffn": 75.0})}
    assert verdicts(per_seed, searches=[best], search_scores=items)["paper_region"] == "holds"
    assert verdicts(per_seed, searches=[worse], search_scores=items)["paper_region"] == "fails"
    assert verdicts(per_seed, searches=[best, worse], search_scores=items)["paper_region"] == "mixed"
    assert verdicts(per_seed, searches=[untried])["paper_region"] == "not tested"
    near = {**rows("bio", {"r25-50_ffn": 70.0}),  # 0.5 points apart, on other items: the items cannot tell
            "bio/r0-50_mha-ffn.json": record("r0-50_mha-ffn", "bio", 0, 69.5, 69.5, order_seed=1)}
    assert verdicts(per_seed, searches=[close], search_scores=near)["paper_region"] == "unclear"
    # Without the candidates' items the trace's gap is a point estimate: the old rule judged it, the new cannot.
    claim = next(c for c in measure(per_seed, ROWS, searches=[best]) if c["claim"] == "paper_region")
    assert (claim["verdict"], claim["old_verdict"]) == ("unclear", "holds")


def test_the_flatness_claim_by_spearman_and_its_permutation_critical_value():
    per_seed = frame({"full": {"bio": [(100.0, 40.0)]}}, {"bio": (0.0, 100.0)})
    drops = [5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    sharp = pd.DataFrame({"run": [f"r{i}" for i in range(8)], "task": "bio", "vers_drop": drops,
                          "spec_rise_1d": [0.1 * d for d in drops]})
    assert verdicts(per_seed, sharpness=sharp)["sharp_forgets"] == "holds"
    assert verdicts(per_seed, sharpness=sharp.assign(spec_rise_1d=[-d for d in drops]))["sharp_forgets"] == "fails"
    weak = sharp.assign(spec_rise_1d=[3.0, 1.0, 6.0, 2.0, 8.0, 4.0, 7.0, 5.0])  # ρ 0.52: above 0, under the critical value
    assert verdicts(per_seed, sharpness=weak)["sharp_forgets"] == "unclear"
    critical = spearman_critical(8)
    assert 0.55 < critical < 0.7  # tables give 0.643 for n = 8, one-sided 5 %
    assert spearman_critical(8) == critical  # seeded


def test_the_forecast_claim_ranks_early_kl_against_the_vers_drop(tmp_path):
    from cofi.analysis.forecast import early_kl, forecast_frame

    # the KL measured every 10 of 100 steps: 20 % of training is step 20
    curve = pd.DataFrame({"step": range(1, 101), "kl": [k / 10 if k % 10 == 0 else np.nan for k in range(1, 101)]})
    assert early_kl(curve, 100) == 2.0 and early_kl(curve, 100, 0.25) == 3.0 and np.isnan(early_kl(curve.head(15), 100))
    drops = {f"r{i}": d for i, d in enumerate([5.0, 10.0, 20.0, 30.0, 45.0, 60.0])}
    per_seed = frame({run: {"bio": [(50.0, 100.0 - drop)] * 2} for run, drop in drops.items()}, {"bio": (0.0, 100.0)})
    curves = []
    for run, drop in drops.items():
        for seed in (0, 1):
            path = tmp_path / f"{run}-{seed}.csv"
            pd.DataFrame({"step": [10, 20, 30], "kl": [0.0, drop / 100 + seed * 0.001, 9.0]}).to_csv(path, index=False)
            curves.append({"method": run, "task": "bio", "seed": seed, "steps": 100, "path": str(path)})
    forecast = forecast_frame(curves)
    assert len(forecast) == 12 and forecast.set_index(["method", "seed"]).loc[("r2", 1), "kl_early"] == 0.201
    assert verdicts(per_seed, forecast=forecast)["kl_forecast"] == "holds"
    backwards = forecast.assign(kl_early=-forecast["kl_early"])
    assert verdicts(per_seed, forecast=backwards)["kl_forecast"] == "fails"
    assert verdicts(per_seed)["kl_forecast"] == "not tested"  # no run measured its KL


def test_the_table_writes_every_claim_with_its_rule_and_a_long_csv():
    per_seed = frame({"cofitune_grad": {"bio": [(95.0, 99.0), (96.0, 98.0)]},
                      "full": {"bio": [(100.0, 40.0), (100.0, 45.0)]}}, {"bio": (0.0, 100.0)})
    claims = measure(per_seed, ROWS)
    text = claims_markdown(claims)
    assert sum(line.startswith("| ") for line in text.splitlines()) == 1 + 8  # header + 8 claims
    assert text.startswith("**How to read the verdicts.**") and "keeps ≥ 95 %" in text
    part = next(c for c in claims if c["claim"] == "vers_kept")["parts"][0]["part"]
    assert f"bio vs base model: 98.5 [{part.low:.1f}, {part.high:.1f}] (holds)" in text
    assert "bio: 98.5 ± 0.7 (holds) → **holds**" in text  # the old rule beside it
    long = claims_frame(claims)
    assert set(long["claim"]) == {c["claim"] for c in claims}
    assert {"estimate", "low", "high", "verdict", "mean", "std", "old_verdict"} <= set(long.columns)


def test_cofitunes_own_rows_are_not_its_rivals():
    """The coarse pick and CoFiTune's other variants are CoFiTune, not another method: 'best Uni without old data'
    compares with the other methods only (the experiment names them: Experiment.claim_rows)."""
    from cofi.config.checks import load_config
    from cofi.config.experiment import Experiment
    from cofi.config.schema import validate_schema

    from conftest import REPO

    per_seed = frame({"cofitune_grad": {"bio": [(95.0, 99.0), (96.0, 98.0)]},
                      "cofitune_coarse": {"bio": [(96.0, 99.0), (97.0, 98.0)]},   # a shade better: CoFiTune's own
                      "l2": {"bio": [(90.0, 80.0), (92.0, 82.0)]}}, {"bio": (0.0, 100.0)})
    rows = Experiment(validate_schema(load_config(REPO / "config.yaml"))).claim_rows
    assert {"cofitune_coarse", "cofitune_update", "cofitune_sam"} <= set(rows.own_rows) and "full" not in rows.own_rows
    claim = next(c for c in measure(per_seed, rows) if c["claim"] == "best_uni")
    assert claim["verdict"] == "holds" and "(l2)" in claim["parts"][0]["part"].against
    assert next(c for c in measure(per_seed, ROWS) if c["claim"] == "best_uni")["verdict"] == "fails"  # rivals unnamed
