"""The realignment probe's table on rows whose recovery is known, and its examples."""

import json

import numpy as np
import pandas as pd
import pytest

from cofi.analysis.intervals import Bootstrap
from cofi.analysis.realign import realign_markdown, realign_table


def row(method, seed, reason):
    items = {"spec": [1.0] * 20, "know": [1.0] * 20, "reason": reason, "instruct": [0.5] * 20}
    scores = {suite: 100 * float(np.mean(values)) for suite, values in items.items()}
    return {"method": method, "task": "bio", "seed": seed, "split": "test", **scores,
            "vers": (scores["know"] + scores["reason"] + scores["instruct"]) / 3, "uni": 0.0, "item_scores": items}


def test_what_comes_back_beyond_the_base_models_own_gain_is_the_share_of_the_drop_that_was_format():
    knows = [1.0] * 16 + [0.0] * 4
    teaches_two = [1.0] * 18 + [0.0] * 2  # the probe teaches the base model two items it did not know
    rng = np.random.default_rng(0)
    before, after = [row("base", None, knows)], []
    for seed in range(3):
        after.append(row("base", seed, teaches_two))
        forgot = [0.0 if i < 12 and rng.random() < 0.9 else v for i, v in enumerate(knows)]
        before.append(row("full", seed, forgot))  # answers hidden: the probe brings them all back, and the two more
        after.append(row("full", seed, teaches_two))
        before.append(row("lora", seed, forgot))  # answers gone: the probe brings back only what it teaches anyone
        after.append(row("lora", seed, [1.0 if i >= 16 and i < 18 else v for i, v in enumerate(forgot)]))
    table = realign_table(pd.DataFrame(before), pd.DataFrame(after), Bootstrap(500, 0)).set_index(["method", "suite"])
    assert set(table.index) == {(m, s) for m in ("full", "lora") for s in ("know", "reason", "instruct", "vers")}
    full, lora = table.loc["full", "reason"], table.loc["lora", "reason"]
    assert full["control"] == pytest.approx(10.0) and lora["control"] == pytest.approx(10.0)  # 2 of 20 items
    assert full["drop_lo"] > 0 and full["share"] == pytest.approx(100.0)
    assert full["recovered"] == pytest.approx(full["drop"] + 10.0)
    assert lora["drop_lo"] > 0 and lora["share"] == pytest.approx(0.0) and lora["beyond"] == pytest.approx(0.0)
    assert full["share_lo"] > 50 and lora["share_hi"] < 50  # the intervals tell the two apart
    know = table.loc["full", "know"]
    assert know["drop"] == 0 and np.isnan(know["share"])  # no drop, no share of it
    assert table.loc["full", "vers"]["drop"] == pytest.approx(full["drop"] / 3)
    assert "| full | bio | Reason |" in realign_markdown(table.reset_index(), 10, 8)
    assert "realign.runs is empty" in realign_markdown(realign_table(pd.DataFrame(before), pd.DataFrame(after[:1])), 10, 8)


def test_what_the_steps_cost_the_base_model_is_not_credited_to_a_row_at_the_floor():
    """The probe costs the base model 6 items (it answers in the examples' form); a row that had lost them already
    cannot lose them again. Adding the base model's loss back would call its whole drop format."""
    knows = [1.0] * 16 + [0.0] * 4
    floor = [0.0] * 20
    before = [row("base", None, knows)] + [row("full", seed, floor) for seed in range(3)]
    after = [row("base", seed, [0.0] * 6 + knows[6:]) for seed in range(3)] + [row("full", seed, floor)
                                                                               for seed in range(3)]
    full = realign_table(pd.DataFrame(before), pd.DataFrame(after), Bootstrap(500, 0)).set_index("suite").loc["reason"]
    assert full["drop"] == pytest.approx(80.0) and full["control"] == pytest.approx(-30.0)
    assert full["recovered"] == 0 and full["beyond"] == 0 and full["share"] == 0 and full["share_hi"] == 0


def test_the_examples_are_the_suites_first_items_in_turn_with_their_references(tmp_path):
    from cofi.jobs.realign import realign_records

    gen = tmp_path / "reason_val.jsonl"
    gen.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(3)))
    mc = tmp_path / "know_val.jsonl"
    mc.write_text("".join(json.dumps({"instruction": f"m{i}", "choices": ["x", "y"], "answer": 1}) + "\n"
                          for i in range(2)))
    records = realign_records({"reason": {"path": str(gen), "type": "generation"},
                               "know": {"path": str(mc), "type": "multiple_choice"}}, 4)
    assert [r["instruction"] for r in records] == ["q0", "m0", "q1", "m1"]
    assert records[1]["output"] == "y" and records[0] == {"instruction": "q0", "input": "", "output": "a0"}
    assert len(realign_records({"reason": {"path": str(gen), "type": "generation"}}, 10)) == 3
