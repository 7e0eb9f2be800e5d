import json

import pytest

from cofi.tables import markdown_table, tidy_table, write_tables


def score_file(path, method, seed, spec, know, reason, instruct):
    vers = (know + reason + instruct) / 3
    data = {"labels": {"method": method, "seed": seed}, "spec": spec, "know": know, "reason": reason,
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
    ]


def test_tidy_table_means_over_seeds(score_files):
    tidy = tidy_table(score_files)
    assert list(tidy.columns) == ["method", "task", "spec", "know", "reason", "instruct", "vers", "uni", "n_seeds", "detail"]
    assert tidy[["method", "task"]].values.tolist() == [["base", "bio"], ["base", "rotate"], ["full", "bio"], ["full", "rotate"]]
    full_bio = tidy.iloc[2]
    assert (full_bio.spec, full_bio.know, full_bio.vers, full_bio.n_seeds) == (95.0, 50.0, 60.0, 2)
    assert full_bio.uni == pytest.approx((95.0 + 60.0) / 2)
    assert tidy.iloc[0].uni == pytest.approx(45.0)


def test_markdown_has_methods_as_rows_and_task_blocks(score_files, tmp_path):
    tidy = write_tables(score_files, tmp_path / "t.csv", tmp_path / "t.md")
    text = (tmp_path / "t.md").read_text()
    header = text.splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")][:4] == ["method", "bio Spec", "bio Know", "bio Reason"]
    assert "rotate Uni" in header
    rows = [line.split("|")[1].strip() for line in text.splitlines()[2:]]
    assert rows == ["base", "full"]
    assert "95.0" in text and markdown_table(tidy) == text
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "method,task,spec,know,reason,instruct,vers,uni,n_seeds,detail"


def test_search_picks_become_cofitune_coarse_rows(score_files, tmp_path):
    pick = score_file(tmp_path / "pick.json", "region-r25-50_ffn", 0, {"bio": 80.0}, 90.0, 90.0, 90.0)
    other = score_file(tmp_path / "other.json", "region-r0-50_ffn", 0, {"bio": 10.0}, 10.0, 10.0, 10.0)
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"task": "bio", "run": "region-r25-50_ffn", "selected": "r25-50_ffn"}))
    tidy = tidy_table(score_files + [result, pick, other])
    coarse = tidy[tidy["method"] == "cofitune_coarse"]
    assert coarse[["task", "spec", "detail"]].values.tolist() == [["bio", 80.0, "r25-50_ffn"]]
    assert "region-r0-50_ffn" in set(tidy["method"])  # not the pick: keeps its own name
    assert "cofitune_coarse: bio → r25-50_ffn" in markdown_table(tidy)
