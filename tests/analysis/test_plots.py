import pandas as pd

from cofi.analysis.plots import pareto_front, write_plots
from cofi.analysis.tables import write_tables

from test_tables import score_file


def test_pareto_front_keeps_only_undominated_points():
    points = pd.DataFrame({"method": list("abcde"), "spec": [0, 50, 60, 90, 40], "vers": [100, 80, 60, 30, 70]})
    assert pareto_front(points)["method"].tolist() == ["a", "b", "c", "d"]  # e (40, 70) is beaten by b (50, 80)


def test_figures_from_the_table(tmp_path):
    files = [score_file(tmp_path / "base.json", "base", None, {"bio": 0.0}, 100.0, 90.0, 80.0),
             score_file(tmp_path / "f0.json", "full", 0, {"bio": 100.0}, 60.0, 70.0, 80.0),
             score_file(tmp_path / "f1.json", "full", 1, {"bio": 90.0}, 50.0, 60.0, 70.0)]
    write_tables(files, tmp_path / "tables", reference="full")
    extra = tmp_path / "tree.png"
    extra.write_bytes(b"\x89PNG fake")
    written = write_plots(tmp_path / "tables" / "main.csv", tmp_path / "plots", {str(tmp_path / "plots" / "search_tree_bio.png"): str(extra)})
    names = {p.name for p in written}
    assert names == {"uni.png", "uni.pdf", "pareto_bio.png", "pareto_bio.pdf", "search_tree_bio.png"}
    assert all(p.stat().st_size > 1000 for p in written if p.suffix == ".pdf")


def test_labels_of_nearby_points_do_not_overlap():
    from cofi.analysis.plots import label_heights

    points = pd.DataFrame({"spec": [10.0, 11.0, 12.0, 80.0], "vers": [90.0, 90.5, 89.8, 90.0]})
    heights = label_heights(points)
    near = sorted(heights[:3])
    assert all(b - a >= 2.6 - 1e-9 for a, b in zip(near, near[1:]))  # the cluster is spread out
    assert heights[3] == 90.0  # a label far away stays at its point
