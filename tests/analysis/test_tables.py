import json

import pandas as pd
import pytest

from cofi.analysis.tables import latex_table, markdown_table, read_score_files, tidy_table, write_tables
from cofi.config.settings import TablesSettings

STD_ONLY = TablesSettings(show_std=True, interval=False)  # the formatting tests' cells: mean ± std


def score_file(path, method, seed, spec, know, reason, instruct, split=None):
    vers = (know + reason + instruct) / 3
    labels = {"method": method, "seed": seed} | ({"split": split} if split else {})
    data = {"labels": labels, "spec": spec, "know": know, "reason": reason,
            "instruct": instruct, "vers": vers, "uni": {t: (s + vers) / 2 for t, s in spec.items()}}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def score_files(tmp_path):
    return [
        score_file(tmp_path / "full1.json", "full", 1, {"bio": 90.0}, 40.0, 50.0, 60.0),
        score_file(tmp_path / "base.json", "base", None, {"bio": 0.0, "rotate": 3.0}, 100.0, 90.0, 80.0),
        score_file(tmp_path / "full0.json", "full", 0, {"bio": 100.0}, 60.0, 70.0, 80.0),
        score_file(tmp_path / "rot.json", "full", 0, {"rotate": 50.0}, 90.0, 90.0, 30.0),
        score_file(tmp_path / "l2_0.json", "l2", 0, {"bio": 80.0}, 80.0, 80.0, 80.0),
        score_file(tmp_path / "l2_1.json", "l2", 1, {"bio": 60.0}, 90.0, 60.0, 90.0),
    ]


def test_means_stds_and_seed_counts(score_files):
    tidy = tidy_table(score_files, reference="full").set_index(["method", "task"])
    assert list(tidy.index) == [("base", "bio"), ("base", "rotate"), ("full", "bio"), ("full", "rotate"), ("l2", "bio")]
    full = tidy.loc[("full", "bio")]
    assert (full.spec, full.know, full.vers, full.n_seeds) == (95.0, 50.0, 60.0, 2)
    assert full.uni == pytest.approx((95.0 + 60.0) / 2)
    assert full.spec_std == pytest.approx(pd.Series([90.0, 100.0]).std())  # sample std over seeds
    assert pd.isna(tidy.loc[("full", "rotate"), "spec_std"]) and tidy.loc[("full", "rotate"), "n_seeds"] == 1
    assert tidy.loc[("base", "bio"), "uni"] == pytest.approx(45.0)


def test_normalised_view(score_files):
    tidy = tidy_table(score_files, reference="full").set_index(["method", "task"])
    l2, full, base = tidy.loc[("l2", "bio")], tidy.loc[("full", "bio")], tidy.loc[("base", "bio")]
    assert l2.spec_pct_ref == pytest.approx(100 * 70.0 / 95.0)
    assert l2.vers_pct_base == pytest.approx(100 * 80.0 / 90.0)
    assert l2.vers_change_pct == pytest.approx(100 * (80.0 - 60.0) / 60.0)
    assert (full.spec_pct_ref, full.vers_change_pct, base.vers_pct_base) == (100.0, 0.0, 100.0)
    assert base.spec_pct_ref == 0.0


def test_markdown_marks_the_best_fine_tuned_value_per_column_with_std(score_files, tmp_path):
    write_tables(score_files, tmp_path, reference="full", settings=STD_ONLY)
    text = (tmp_path / "main.md").read_text()
    assert text.startswith("Test scores, mean over seeds 0, 1 ± std; best per column in bold")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["method", "bio Spec", "bio Know", "bio Reason"] and "rotate Uni" in header
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in lines[2:]}
    assert list(rows) == ["base", "full", "l2"]
    assert rows["full"][0] == "**95.0 ± 7.1**"  # Spec: full beats l2 (70.0)
    assert rows["l2"][4] == "**80.0 ± 0.0**"  # Vers: l2 (80) beats full (60); base (90) is not a contender
    assert rows["base"][4] == "90.0" and rows["full"][6] == "**50.0**"  # one seed: no ± ; alone on rotate: best
    normalised = (tmp_path / "normalised.md").read_text()
    assert "bio Spec % ref" in normalised and "**+33.3**" in normalised  # l2's Vers change against full


def test_tuned_row_picks_on_validation_and_shows_test_scores(score_files, tmp_path):
    files = list(score_files)
    for seed in (0, 1):  # lr 0.001 is better on validation; lr 0.01 would be better on test
        files.append(score_file(tmp_path / f"a{seed}.json", "sft_lr0.001", seed, {"bio": 50.0}, 50.0, 50.0, 50.0))
        files.append(score_file(tmp_path / f"b{seed}.json", "sft_lr0.01", seed, {"bio": 90.0}, 90.0, 90.0, 90.0))
        files.append(score_file(tmp_path / f"av{seed}.json", "sft_lr0.001", seed, {"bio": 80.0}, 80.0, 80.0, 80.0, "val"))
        files.append(score_file(tmp_path / f"bv{seed}.json", "sft_lr0.01", seed, {"bio": 70.0}, 70.0, 70.0, 70.0, "val"))
    groups = {"sft": {"sft_lr0.001": "lr=0.001", "sft_lr0.01": "lr=0.01"}}
    tidy = tidy_table(files, reference="full", groups=groups)
    assert list(dict.fromkeys(tidy["method"])) == ["base", "full", "l2", "sft_lr0.001", "sft_lr0.01", "sft_tuned"]
    tuned = tidy.set_index("method").loc["sft_tuned"]
    assert (tuned.spec, tuned.detail, tuned.n_seeds) == (50.0, "lr=0.001", 2)
    assert "sft_tuned (chosen on validation): bio → lr=0.001" in markdown_table(tidy)
    with pytest.raises(ValueError, match="no validation scores"):
        tidy_table([f for f in files if "bv" not in f.name], reference="full", groups=groups)
    # The headline table: each sweep by its tuned row, every other run as it is.
    write_tables(files, tmp_path / "out", reference="full", groups=groups)
    headline = (tmp_path / "out" / "tuned.md").read_text()
    assert "| sft_tuned " in headline and "| l2 " in headline and "sft_lr0.001 " not in headline.split("\n\n")[1]
    assert "sft_tuned (chosen on validation): bio → lr=0.001" in headline


def test_search_picks_become_cofitune_coarse_rows(score_files, tmp_path):
    pick = score_file(tmp_path / "pick.json", "region-r25-50_ffn", 0, {"bio": 80.0}, 90.0, 90.0, 90.0)
    other = score_file(tmp_path / "other.json", "region-r0-50_ffn", 0, {"bio": 10.0}, 10.0, 10.0, 10.0)
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"task": "bio", "run": "region-r25-50_ffn", "selected": "r25-50_ffn"}))
    tidy = tidy_table(score_files + [pick, other], reference="full", searches=[result])
    coarse = tidy[tidy["method"] == "cofitune_coarse"]
    assert coarse[["task", "spec", "detail"]].values.tolist() == [["bio", 80.0, "r25-50_ffn"]]
    assert list(dict.fromkeys(tidy["method"]))[:3] == ["base", "full", "cofitune_coarse"]
    assert "region-r0-50_ffn" in set(tidy["method"])  # not the pick: keeps its own name
    assert "cofitune_coarse (region): bio → r25-50_ffn" in markdown_table(tidy)


def test_latex_is_booktabs_with_escaped_names_and_bold_best(score_files):
    tidy = tidy_table(score_files, reference="full")
    tex = latex_table(tidy, settings=STD_ONLY, caption="Scores ± std, 50% of it")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{6}{c}{bio}" in tex and r"\textbf{95.0 $\pm$ 7.1}" in tex
    assert r"\caption{Scores $\pm$ std, 50\% of it}" in tex


def test_csv_is_tidy_with_per_seed_file(score_files, tmp_path):
    write_tables(score_files, tmp_path, reference="full")
    main = pd.read_csv(tmp_path / "main.csv")
    assert list(main.columns[:8]) == ["method", "task", "spec", "know", "reason", "instruct", "vers", "uni"]
    assert {"spec_std", "n_seeds", "detail", "spec_pct_ref", "vers_pct_base", "vers_change_pct"} <= set(main.columns)
    seeds = pd.read_csv(tmp_path / "seeds.csv")
    assert len(seeds) == len(read_score_files(score_files)) == 7
    assert (tmp_path / "main.tex").is_file() and (tmp_path / "normalised.tex").is_file()


def test_a_partial_set_of_score_files_is_refused(score_files, tmp_path):
    from cofi.errors import InputError

    expect = {"runs": ["full", "l2"], "sweeps": [], "tasks": ["bio"], "seeds": [0, 1], "searched": []}
    write_tables(score_files, tmp_path, reference="full", expect=expect)  # complete: fine
    with pytest.raises(InputError, match=r"partial: no score file for l2 bio seed 1 \(test\)"):
        write_tables([f for f in score_files if f.name != "l2_1.json"], tmp_path, reference="full", expect=expect)
    with pytest.raises(InputError, match=r"no score file for base bio \(test\); cofitune_coarse bio seed 0"):
        write_tables([f for f in score_files if f.name != "base.json"], tmp_path, reference="full",
                     expect={**expect, "searched": ["bio"]})


def test_a_run_that_shares_another_runs_files_gets_rows_of_its_own_name(score_files, tmp_path):
    """RUN=PATH: the file of run full read as run sft_lr0.0003's (it trains exactly what full trains), in the
    place the list gives it, with the same numbers as full's row."""
    files = [str(f) for f in score_files]
    shared = [f"sft_lr0.0003={tmp_path / 'full0.json'}", f"sft_lr0.0003={tmp_path / 'full1.json'}"]
    tidy = tidy_table(files[:2] + shared + files[2:], reference="full")
    assert list(dict.fromkeys(tidy["method"])) == ["base", "full", "sft_lr0.0003", "l2"]
    rows = tidy.set_index(["method", "task"])
    assert rows.loc[("sft_lr0.0003", "bio")].equals(rows.loc[("full", "bio")])
    assert json.loads((tmp_path / "full0.json").read_text())["labels"]["method"] == "full"  # the file is left alone
    with pytest.raises(FileNotFoundError):  # a folder in the part before "=": a path, not a run name
        read_score_files([str(tmp_path / "sub=dir" / "x.json")])


def itemised_file(path, method, seed, correct: dict, n=200, split=None):
    """A score file with its items: ``correct`` {suite: items passed of n} for spec (task bio), know, reason,
    instruct; item i passes when i < that count (so a row that passes more passes a superset)."""
    item_scores = {suite: [float(i < k) for i in range(n)] for suite, k in correct.items()}
    score = {suite: 100 * k / n for suite, k in correct.items()}
    vers = (score["know"] + score["reason"] + score["instruct"]) / 3
    labels = {"method": method, "seed": seed} | ({"split": split} if split else {})
    path.write_text(json.dumps({
        "labels": labels, "spec": {"bio": score["spec"]}, **{d: score[d] for d in ("know", "reason", "instruct")},
        "vers": vers, "uni": {"bio": (score["spec"] + vers) / 2}, "items": {"bio": n, "know": n, "reason": n,
                                                                             "instruct": n},
        "item_scores": {"spec": {"bio": item_scores["spec"]},
                        "vers": {d: item_scores[d] for d in ("know", "reason", "instruct")}}}))
    return path


def test_every_cell_has_its_interval_and_every_row_its_paired_difference_from_full_sft(tmp_path):
    files = [itemised_file(tmp_path / "base.json", "base", None, {"spec": 0, "know": 190, "reason": 180, "instruct": 170})]
    for seed, shift in ((0, 0), (1, 6), (2, -4)):
        files.append(itemised_file(tmp_path / f"full{seed}.json", "full", seed,
                                   {"spec": 180 + shift, "know": 100, "reason": 90 + shift, "instruct": 80}))
        files.append(itemised_file(tmp_path / f"l2_{seed}.json", "l2", seed,
                                   {"spec": 170 + shift, "know": 150, "reason": 140, "instruct": 120 - shift}))
    tidy = write_tables(files, tmp_path / "out", reference="full").set_index(["method", "task"])
    for row in tidy.itertuples():
        for column in ("spec", "vers", "uni", "spec_pct_ref", "vers_pct_base"):
            low, value, high = getattr(row, f"{column}_lo"), getattr(row, column), getattr(row, f"{column}_hi")
            assert low <= value + 1e-9 and value <= high + 1e-9, (row.Index, column)
    full, l2 = tidy.loc[("full", "bio")], tidy.loc[("l2", "bio")]
    assert full.itemised and full.n_items == "spec 200, know 200, reason 200, instruct 200"
    assert full.spec_pct_ref_lo == pytest.approx(100.0) and full.spec_pct_ref_hi == pytest.approx(100.0)  # itself
    assert 0 < l2.uni_hi - l2.uni_lo < 15
    compared = pd.read_csv(tmp_path / "out" / "comparisons.csv").set_index(["method", "against"])
    row = compared.loc[("l2", "full")]
    assert row.d_uni == pytest.approx(l2.uni - full.uni, abs=1e-3) and row.d_uni_lo < row.d_uni < row.d_uni_hi
    assert row.d_vers_lo > 0 and row.d_spec_hi < 0  # l2 keeps more Vers and learns less Spec, beyond doubt
    # paired: narrower than the two rows' own intervals side by side
    assert row.d_uni_hi - row.d_uni_lo < (l2.uni_hi - l2.uni_lo) + (full.uni_hi - full.uni_lo)
    text = (tmp_path / "out" / "main.md").read_text()
    smallest = 2.8016 * row.d_uni_se  # the only fine-tuned row against full
    assert f"The smallest Uni difference from full this table can see is {smallest:.1f} points" in text
    assert f"{full.spec:.1f} [{full.spec_lo:.1f}, {full.spec_hi:.1f}]" in text
    md = (tmp_path / "out" / "comparisons.md").read_text()
    assert "Against full" in md and f"{row.d_vers:+.1f} [{row.d_vers_lo:+.1f}, {row.d_vers_hi:+.1f}] ↑" in md


def test_rows_chosen_on_a_test_split_are_flagged(score_files, tmp_path):
    write_tables(score_files, tmp_path, reference="full", selected_on_test={"bio": ["l2", "sft_tuned"]})
    for name in ("main.md", "tuned.md", "normalised.md"):
        text = (tmp_path / name).read_text()
        assert "| l2 †" in text and "| full " in text and "| full †" not in text, name
        assert "†: chosen on the test split of bio (selection: test" in text, name
    write_tables(score_files, tmp_path, reference="full")
    assert "†" not in (tmp_path / "main.md").read_text()


def test_labels_choose_order_and_name_the_latex_rows(score_files, tmp_path):
    labels = {"l2": "L2 to $w_0$", "full": "Full SFT"}
    write_tables(score_files, tmp_path, reference="full", settings=TablesSettings(labels=labels))
    tex = (tmp_path / "main.tex").read_text()
    body = [line.split("&")[0].strip() for line in tex.splitlines() if "&" in line and "multicolumn" not in line
            and not line.lstrip().startswith("&")]
    assert body == ["L2 to $w_0$", "Full SFT"]  # base left out, l2 first, renamed
    assert "| base " in (tmp_path / "main.md").read_text()  # the Markdown tables keep every row by its name
