"""The base-seed study's pure parts (cofi/analysis/base_seeds.py) on synthetic tables whose answers are known."""

import math

import pandas as pd
import pytest

from cofi.analysis.base_seeds import seed_configs, spread_frame, verdict_frame, write_base_seeds


def main_table(full_vers: float, full_vers_std: float) -> pd.DataFrame:
    rows = [{"method": "base", "task": "bio", "spec": 0.0, "vers": 99.0, "uni": 49.5,
             "spec_std": float("nan"), "vers_std": float("nan"), "uni_std": float("nan")},
            {"method": "full", "task": "bio", "spec": 100.0, "vers": full_vers, "uni": (100 + full_vers) / 2,
             "spec_std": 0.0, "vers_std": full_vers_std, "uni_std": full_vers_std / 2}]
    return pd.DataFrame(rows)


def test_each_seed_gets_its_own_experiment_and_the_configs_own_seed_keeps_its_name():
    config = {"experiment": "default", "embedded": {"base": {"seed": 0, "layers": 8}}, "seeds": [0, 1]}
    configs = seed_configs(config, [0, 1, 2])
    assert {s: c["experiment"] for s, c in configs.items()} == {0: "default", 1: "default_base1", 2: "default_base2"}
    assert configs[2]["embedded"]["base"] == {"seed": 2, "layers": 8} and config["embedded"]["base"]["seed"] == 0
    assert configs[1]["seeds"] == [0, 1]


def test_the_spread_between_base_seeds_is_set_beside_the_spread_within_one():
    spread = spread_frame({0: main_table(60.0, 2.0), 1: main_table(70.0, 4.0), 2: main_table(80.0, 3.0)})
    vers = spread[(spread["method"] == "full") & (spread["score"] == "vers")].iloc[0]
    assert vers["mean"] == 70.0 and vers["base_seeds"] == 3
    assert vers["between_base_seeds"] == pytest.approx(10.0)  # the std of 60, 70, 80
    assert vers["within_base_seed"] == pytest.approx(3.0)  # the mean of the fine-tuning seeds' stds
    assert vers["ratio"] == pytest.approx(10 / 3)
    assert [vers["base0"], vers["base1"], vers["base2"]] == [60.0, 70.0, 80.0]
    base = spread[(spread["method"] == "base") & (spread["score"] == "vers")].iloc[0]
    assert base["between_base_seeds"] == 0.0 and math.isnan(base["ratio"])  # one score per base model: no within


def claims(verdicts: dict[str, str], best: str = "l2") -> pd.DataFrame:
    return pd.DataFrame([{"claim": claim, "task": "bio", "against": best if claim == "best_uni" else "full",
                          "verdict": verdict} for claim, verdict in verdicts.items()])


def test_a_verdict_that_differs_between_base_seeds_moves():
    table = verdict_frame({0: claims({"vers_kept": "holds", "best_uni": "holds"}),
                           1: claims({"vers_kept": "holds", "best_uni": "fails"}, best="replay")})
    by_claim = table.set_index("claim")
    assert not by_claim.loc["vers_kept", "moves"] and by_claim.loc["best_uni", "moves"]
    assert by_claim.loc["best_uni", "against"] == "l2; replay"
    assert list(by_claim.loc["best_uni", ["base0", "base1"]]) == ["holds", "fails"]


def test_written_files(tmp_path):
    for seed, vers in ((0, 60.0), (1, 70.0)):
        tables = tmp_path / f"exp{seed}" / "tables"
        tables.mkdir(parents=True)
        main_table(vers, 2.0).to_csv(tables / "main.csv", index=False)
        claims({"vers_kept": "holds" if seed == 0 else "unclear"}).to_csv(tables / "claims.csv", index=False)
    write_base_seeds({0: tmp_path / "exp0", 1: tmp_path / "exp1"}, tmp_path / "out")
    assert "1 of 1 move" in (tmp_path / "out" / "verdicts.md").read_text()
    assert len(pd.read_csv(tmp_path / "out" / "spread.csv")) == 6  # 2 rows x 3 scores
