import pytest

from cofi.search.regions import Region
from cofi.search.policy import Policy, best_node, children, first_candidates, grid, step

N = 8


def region(lo, hi, *modules):
    return Region.make(lo, hi, modules or ("mha", "ffn"))


def test_paper_schedule_children():
    root = region(0, 1)
    assert [c.id for c in children(root, "halves", N, 1)] == ["r0-50_mha-ffn", "r25-75_mha-ffn", "r50-100_mha-ffn"]
    assert [c.id for c in children(region(0.25, 0.75), "split", N, 1)] == ["r25-50_mha-ffn", "r50-75_mha-ffn"]
    assert children(region(0.25, 0.5), "quarters", N, 1) == children(region(0.25, 0.5), "split", N, 1)
    assert [c.id for c in children(region(0.25, 0.5), "modules", N, 1)] == ["r25-50_mha", "r25-50_ffn"]
    assert children(region(0.25, 0.5, "ffn"), "modules", N, 1) == []


def test_min_layers_drops_thin_ranges():
    assert children(region(0.25, 0.5), "split", N, 2) == []  # eighths hold one layer of 8
    assert len(children(region(0.25, 0.5), "split", N, 1)) == 2
    with pytest.raises(ValueError, match="unknown schedule step 'thirds'"):
        children(region(0, 1), "thirds", N, 1)


def test_grid_is_seven_ranges_times_three_module_sets():
    space = grid(("mha", "ffn"), N, 1)
    assert len(space) == 21 and len({r.id for r in space}) == 21
    assert {r.modules for r in space} == {("mha",), ("ffn",), ("mha", "ffn")}
    assert len(grid(("mha", "ffn"), 4, 2)) == 9  # quarters of 4 layers hold one layer each


def scores(spec, vers):
    return {"spec": spec, "vers": vers, "uni": (spec + vers) / 2}


def depth1(policy, table, reference_spec=100.0, root_value=50.0):
    candidates = first_candidates(policy, N)
    result = step(1, candidates, {c["id"]: table[c["id"]] for c in candidates}, {"root": root_value}, reference_spec, policy, N)
    return {n["id"]: n for n in result.nodes}, result.expand


TABLE = {"r0-50_mha-ffn": scores(95, 60), "r25-75_mha-ffn": scores(92, 70), "r50-100_mha-ffn": scores(80, 90)}


def test_selection_by_uni_under_the_spec_floor():
    nodes, expand = depth1(Policy(), TABLE)
    # r50-100 has the best Uni (85) but Spec 80 < 0.9 x 100: pruned by the floor.
    assert nodes["r50-100_mha-ffn"]["status"] == "pruned" and "below floor 90.0" in nodes["r50-100_mha-ffn"]["reason"]
    assert nodes["r25-75_mha-ffn"]["status"] == "expanded"
    assert nodes["r0-50_mha-ffn"]["status"] == "pruned" and "outranked" in nodes["r0-50_mha-ffn"]["reason"]
    assert [(c["id"], c["parent"]) for c in expand] == [("r25-50_mha-ffn", "r25-75_mha-ffn"), ("r50-75_mha-ffn", "r25-75_mha-ffn")]


def test_other_criteria():
    nodes, _ = depth1(Policy(criterion="spec"), TABLE)
    assert nodes["r0-50_mha-ffn"]["status"] == "expanded"  # max Spec, no floor
    nodes, _ = depth1(Policy(criterion="vers", spec_floor=0.85), TABLE)
    assert nodes["r25-75_mha-ffn"]["status"] == "expanded"  # r50-100 has more Vers but Spec 80 < 85


def test_ties_go_to_the_smaller_region_then_the_id():
    policy = Policy(mode="grid", root_modules=("mha", "ffn"))
    table = {r.id: scores(95, 60) for r in grid(("mha", "ffn"), N, 1)}
    nodes, expand = depth1(policy, table)
    kept = [i for i, n in nodes.items() if n["status"] != "pruned"]
    assert kept == ["r0-25_ffn"] and expand == []  # 2 layers x 1 group, first id among the smallest


def test_beam_keeps_several_and_deduplicates_children():
    nodes, expand = depth1(Policy(beam=2, spec_floor=0.0), TABLE)
    assert {i for i, n in nodes.items() if n["status"] == "expanded"} == {"r50-100_mha-ffn", "r25-75_mha-ffn"}
    # (1/4, 3/4] and (1/2, 1] both split into (1/2, 3/4]: it is trained once, for its first parent.
    assert [(c["id"], c["parent"]) for c in expand] == [
        ("r25-50_mha-ffn", "r25-75_mha-ffn"), ("r50-75_mha-ffn", "r25-75_mha-ffn"), ("r75-100_mha-ffn", "r50-100_mha-ffn")]


def test_stop_when_no_child_beats_its_parent():
    nodes, expand = depth1(Policy(), TABLE, root_value=90.0)
    assert expand == [] and "does not beat parent 90.0" in nodes["r25-75_mha-ffn"]["reason"]
    nodes, expand = depth1(Policy(margin=1.0), TABLE, root_value=80.5)
    assert expand == [] and nodes["r25-75_mha-ffn"]["status"] == "kept"  # 81.0 beats 80.5 by only 0.5


def test_depth_limit_and_whole_walk():
    policy = Policy(max_depth=2)
    nodes, expand = depth1(policy, TABLE)
    table2 = {"r25-50_mha-ffn": scores(93, 75), "r50-75_mha-ffn": scores(90, 60)}
    parent_values = {"r25-75_mha-ffn": 81.0, "root": 50.0}
    result = step(2, expand, table2, parent_values, 100.0, policy, N)
    by_id = {n["id"]: n for n in result.nodes}
    assert result.expand == [] and "depth limit 2" in by_id["r25-50_mha-ffn"]["reason"]
    pick = best_node(list(nodes.values()) + result.nodes, N)
    assert pick["id"] == "r25-50_mha-ffn"  # Uni 84 beats its parent's 81


def test_pick_is_the_parent_when_children_do_not_improve():
    policy = Policy()
    nodes, expand = depth1(policy, TABLE)
    result = step(2, expand, {"r25-50_mha-ffn": scores(91, 60), "r50-75_mha-ffn": scores(95, 50)},
                  {"r25-75_mha-ffn": 81.0, "root": 50.0}, 100.0, policy, N)
    assert best_node(list(nodes.values()) + result.nodes, N)["id"] == "r25-75_mha-ffn"


def test_first_candidates_grid_and_tree():
    assert len(first_candidates(Policy(mode="grid"), N)) == 21
    assert [c["id"] for c in first_candidates(Policy(), N)] == ["r0-50_mha-ffn", "r25-75_mha-ffn", "r50-100_mha-ffn"]
    assert Policy(mode="grid").depth_limit == 1 and Policy().depth_limit == 3 and Policy(max_depth=2).depth_limit == 2


def test_when_nobody_reaches_the_floor_the_highest_spec_is_kept_and_the_search_stops():
    table = {"r0-50_mha-ffn": scores(50, 60), "r25-75_mha-ffn": scores(55, 90), "r50-100_mha-ffn": scores(40, 95)}
    nodes, expand = depth1(Policy(), table)
    assert expand == []
    assert nodes["r25-75_mha-ffn"]["status"] == "kept" and "no candidate reached the Spec floor" in nodes["r25-75_mha-ffn"]["reason"]
    assert [n["status"] for i, n in sorted(nodes.items()) if i != "r25-75_mha-ffn"] == ["pruned", "pruned"]
    assert best_node(list(nodes.values()), N)["id"] == "r25-75_mha-ffn"


def test_a_candidate_scores_as_its_best_learning_rate():
    from cofi.search.policy import best_variant

    policy = Policy(spec_floor=0.5)  # criterion uni, floor 0.5 x the reference's Spec (80): 40
    variants = {1e-4: {"spec": 30.0, "vers": 99.0, "uni": 64.5},   # best Uni, but under the floor
                3e-4: {"spec": 60.0, "vers": 80.0, "uni": 70.0},
                1e-3: {"spec": 90.0, "vers": 50.0, "uni": 70.0}}   # ties 3e-4: the smaller lr wins
    assert best_variant(variants, policy, reference_spec=80.0) == 3e-4
    assert best_variant(variants, Policy(criterion="spec"), reference_spec=80.0) == 1e-3
    below = {1e-4: {"spec": 10.0, "vers": 99.0, "uni": 54.5}, 1e-3: {"spec": 20.0, "vers": 40.0, "uni": 30.0}}
    assert best_variant(below, policy, reference_spec=80.0) == 1e-3  # nobody reaches the floor: highest Spec


def test_search_step_records_each_candidates_best_lr_and_run(tmp_path):
    import json

    from cofi.jobs.search import search_report, search_step

    def scores(name, spec, vers):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"spec": {"bio": spec}, "vers": vers, "uni": {"bio": (spec + vers) / 2}}))
        return str(path)

    policy = Policy(schedule=("halves",), spec_floor=0.5)
    ref = scores("ref", 80.0, 40.0)
    depth0 = search_step("bio", 0, policy, N, ref, "val", None, {}, str(tmp_path / "d0.json"),
                         reference_run={"run": "full", "lr": 3e-4})
    values = {"r0-50_mha-ffn": {3e-4: (50.0, 70.0), 1e-3: (70.0, 60.0)},
              "r25-75_mha-ffn": {3e-4: (30.0, 90.0), 1e-3: (45.0, 70.0)},
              "r50-100_mha-ffn": {3e-4: (20.0, 95.0), 1e-3: (35.0, 90.0)}}
    run = lambda cid, lr: f"region-{cid}" + ("" if lr == 3e-4 else "_lr0.001")  # noqa: E731
    candidates = {cid: [{"lr": lr, "run": run(cid, lr), "scores": scores(run(cid, lr), *sv)} for lr, sv in by_lr.items()]
                  for cid, by_lr in values.items()}
    assert [c["id"] for c in depth0["expand"]] == list(values)
    depth1 = search_step("bio", 1, policy, N, ref, "val", str(tmp_path / "d0.json"), candidates, str(tmp_path / "d1.json"))
    nodes = {n["id"]: n for n in depth1["nodes"]}
    # r0-50: Uni 60 at 3e-4 and 65 at 1e-3, both over the floor (40): 1e-3. r25-75: 3e-4 is under the floor.
    assert (nodes["r0-50_mha-ffn"]["lr"], nodes["r0-50_mha-ffn"]["uni"]) == (1e-3, 65.0)
    assert (nodes["r25-75_mha-ffn"]["lr"], nodes["r25-75_mha-ffn"]["run"]) == (1e-3, "region-r25-75_mha-ffn_lr0.001")
    assert nodes["r0-50_mha-ffn"]["variants"]["0.0003"]["uni"] == 60.0
    result = search_report("bio", [str(tmp_path / "d0.json"), str(tmp_path / "d1.json")], N, tmp_path / "report")
    # r50-100 at 1e-3: Uni 62.5 < 65; the pick is r0-50 at 1e-3, and its run is the one trained at 1e-3
    assert (result["selected"], result["lr"], result["run"]) == ("r0-50_mha-ffn", 1e-3, "region-r0-50_mha-ffn_lr0.001")
    assert len(result["runs"]) == 6 and len(result["trained"]) == 3
    assert "0.001" in (tmp_path / "report" / "table.md").read_text() and ",0.001," in (tmp_path / "report" / "trace.csv").read_text()


def test_search_efficiency_counts_the_search_seeds_trainings_and_the_gap_to_the_widest_search(tmp_path):
    """bench-search's table: trainings per search, their time at the search's seed only (the pick is trained at every
    seed afterwards), and each pick's validation Uni against the widest search's best."""
    import json

    from cofi.devtools.bench import search_efficiency

    def result(folder, runs, selected, uni):
        path = tmp_path / folder / "bio"
        path.mkdir(parents=True)
        (path / "result.json").write_text(json.dumps({"selected": selected, "lr": 0.001, "trained": sorted({r.split("_lr")[0] for r in runs}),
                                                      "runs": runs, "scores": {"uni": uni}}))

    result("tree", ["region-a", "region-b"], "a", 90.0)
    result("grid", ["region-a", "region-b", "region-c"], "c", 92.5)
    for run, seconds in (("region-a", 10), ("region-b", 20), ("region-c", 30)):
        for seed, factor in ((0, 1), (1, 100)):  # seed 1: the pick trained again later, not the search's time
            tsv = tmp_path / "benchmarks/finetune" / run / "bio" / f"seed{seed}.tsv"
            tsv.parent.mkdir(parents=True, exist_ok=True)
            tsv.write_text(f"s\th:m:s\n{seconds * factor}\t0:00:00\n")
    table = search_efficiency({"tree": tmp_path / "tree", "grid": tmp_path / "grid"}, tmp_path / "benchmarks", seed=0)
    rows = table.set_index("search")
    assert rows.loc["tree", "trainings"] == 2 and rows.loc["tree", "training_s"] == 30.0
    assert rows.loc["grid", "training_s"] == 60.0 and rows.loc["tree", "uni_gap"] == 2.5 and rows.loc["grid", "uni_gap"] == 0
    assert search_efficiency({"tree": tmp_path / "tree"}, tmp_path / "benchmarks", seed=1).loc[0, "training_s"] == 3000.0
    # A search on a sample of the items: the time its scorings took, and its pick's Uni on the whole suites.
    for run, stem, seconds in (("region-a", "val_items5_seed0", 2), ("region-b", "val_items5_seed0", 3),
                               ("region-a", "val", 40)):
        tsv = tmp_path / "benchmarks/evaluate_model" / run / "bio" / f"seed0_{stem}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    scores = tmp_path / "runs/region-a/bio/seed0/val_scores.json"
    scores.parent.mkdir(parents=True)
    scores.write_text(json.dumps({"uni": {"bio": 88.0}}))
    sampled = search_efficiency({"tree": tmp_path / "tree"}, tmp_path / "benchmarks", 0, {"tree": "val_items5_seed0"},
                                tmp_path / "runs").iloc[0]
    assert sampled["scoring_s"] == 5.0 and sampled["pick_uni_whole"] == 88.0
