"""The claims' rows found from what a config has (cofi/config/claim_rows.py), and the claims it cannot test."""

import copy

import pytest

from cofi.config.checks import ConfigError, check_config
from cofi.config.experiment import Experiment


def experiment(config) -> Experiment:
    return Experiment(check_config(copy.deepcopy(config)))


def test_the_default_config_finds_the_rows_it_used_to_name(config):
    rows = experiment(config).claim_rows
    assert (rows.cofitune, rows.full, rows.full_tuned, rows.sam, rows.equal_compute) == (
        "cofitune_grad", "full", "sft_tuned", "full_sam", "full_2x")
    assert rows.old_data == ("replay",)  # replay trains on old data: no config key needed
    assert experiment(config).untested_claims == {}


def test_a_users_config_with_other_run_names_tests_its_claims():
    """A Full SFT lr sweep named full, a cofitune run, L2 and LoRA: every CoFiTune claim finds its rows (before, every
    line read "not tested": the claims looked for the default config's names)."""
    config = {"experiment": "user", "tasks": {"bio": {"type": "generation", "metric": "rouge_l"}},
              "runs": {"full": {"lr": [1e-4, 3e-4]}, "cofitune": {"softmask": "grad"}, "l2": {"lambda": 0.1},
                       "lora": {"rank": 8, "alpha": 16}, "mix": {"method": "replay", "fraction": [0.1, 0.2]}},
              "search": {"reference": "full_lr0.0003"}}
    found = experiment(config)
    rows = found.claim_rows
    assert (rows.cofitune, rows.full, rows.full_tuned, rows.sam, rows.equal_compute) == (
        "cofitune", "full_lr0.0003", "full_tuned", None, None)
    assert set(rows.old_data) == {"mix_fraction0.1", "mix_fraction0.2", "mix_tuned"}
    untested = found.untested_claims
    assert set(untested) == {"sam_forgets_less", "sharp_forgets"}
    assert "equal_compute: true" in untested["sam_forgets_less"]
    # No sweep of Full SFT: the claims against Full SFT are tested against the shared lr only, and say so.
    config["runs"]["full"] = {}
    config["search"]["reference"] = "full"
    partial = experiment(config).untested_claims
    assert partial["spec_kept"].startswith("only in part") and "sweep of method full" in partial["spec_kept"]


def test_a_named_row_is_read_as_named_and_must_exist(config):
    config["claims"]["cofitune"] = "cofitune_update"
    config["claims"]["sam"] = None
    rows = experiment(config).claim_rows
    assert rows.cofitune == "cofitune_update" and rows.sam is None and rows.full == "full"
    assert "sam_forgets_less" in experiment(config).untested_claims
    config["claims"]["full"] = "fulll"
    with pytest.raises(ConfigError, match=r"config key claims\.full: 'fulll' is not a row of the tables .*auto finds "
                                          r"it from the runs"):
        check_config(config)


def test_without_a_cofitune_run_the_search_pick_stands_for_cofitune(config):
    config["runs"] = {"full": {}, "l2": {"lambda": 0.1}}
    config["landscape"]["runs"] = []
    assert experiment(config).claim_rows.cofitune == "cofitune_coarse"
    config["search"]["enabled"] = False
    found = experiment(config)
    assert found.claim_rows.cofitune is None
    assert {"vers_kept", "spec_kept", "vers_gain", "best_uni", "paper_region", "sharp_forgets"} <= set(
        found.untested_claims)


def test_the_7b_example_can_test_every_claim():
    from cofi.config.checks import checked_experiment, load_config

    from conftest import REPO

    found = checked_experiment(load_config(REPO / "configs" / "llama7b_example.yaml"), check_files=False)
    assert found.untested_claims == {}
    rows = found.claim_rows
    assert (rows.cofitune, rows.full, rows.full_tuned, rows.sam, rows.equal_compute) == (
        "cofitune", "full", "sft_tuned", "full_sam", "full_2x")
