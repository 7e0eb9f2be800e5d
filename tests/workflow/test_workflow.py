"""End to end through Snakemake on a tiny config, in a copy of the workflow (results stay in tmp)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from cofi.search.regions import parse_region_id
from conftest import REPO, copy_workflow, snakemake, snakemake_environment

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def test_table_from_a_real_run(tiny_run):
    table = pd.read_csv(tiny_run / "results/tiny/tables/main.csv")
    assert table[["method", "task"]].values.tolist() == [
        ["base", "bio"], ["base", "rotate"], ["full", "bio"], ["full", "rotate"], ["cofitune_coarse", "bio"],
        ["cofitune_coarse", "rotate"], ["cofitune_update", "bio"], ["cofitune_update", "rotate"]]
    scores = table[["spec", "know", "reason", "instruct", "vers", "uni"]]
    assert ((scores >= 0) & (scores <= 100)).all().all()
    assert (table["vers"] - table[["know", "reason", "instruct"]].mean(axis=1)).abs().max() < 1e-3
    assert (table["uni"] - (table["spec"] + table["vers"]) / 2).abs().max() < 1e-3
    markdown = (tiny_run / "results/tiny/tables/main.md").read_text()
    assert "bio Spec" in markdown and "| full" in markdown


def test_every_job_log_pairs_with_its_benchmark_and_the_report_splits_compute_from_overhead(tiny_run):
    from cofi.devtools.bench import benchmark_report, read_benchmarks
    from cofi.io import COMPUTE_PATTERN

    results = tiny_run / "results/tiny"
    benchmarks = sorted((results / "benchmarks").rglob("*.tsv"))
    assert benchmarks and all((results / "logs" / b.relative_to(results / "benchmarks")).with_suffix(".log").is_file()
                              for b in benchmarks)
    jobs = read_benchmarks(results / "benchmarks").set_index("rule")
    # the jobs that train or score name their own work; it is part of their time, not all of it
    for rule in ("build_base", "finetune", "evaluate_run", "evaluate_model", "evaluate_base", "make_data"):
        logs = list((results / "logs" / rule).rglob("*.log"))
        assert logs and all(re.search(COMPUTE_PATTERN, log.read_text(), re.M) for log in logs), rule
        work = jobs.loc[[rule]]
        assert (work["compute_s"] <= work["seconds"]).all(), (rule, work)
        assert rule == "make_data" or work["compute_s"].sum() > 0, (rule, work)  # the tiny world takes ~0 s
    assert (jobs.loc[["main_table"], "compute_s"] == 0).all()
    report = benchmark_report(results / "benchmarks")
    share = float(re.search(r"overhead [\d.]+ s \(([\d.]+) % of job time\)", report)[1])
    assert 0 < share < 100


def test_outputs_are_real_hugging_face_models(tiny_run):
    run = tiny_run / "results/tiny/runs/full/bio/seed0"
    assert (run / "model" / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(run / "model")
    assert model.config.num_hidden_layers == 4
    curve = pd.read_csv(run / "loss.csv")
    assert len(curve) == 10
    watched = curve.dropna(subset=["kl"])  # training.kl_every: 5
    assert list(watched["step"]) == [5, 10] and (watched["kl"] > 0).all() and watched["vers_ce_delta"].notna().all()
    log = (tiny_run / "results/tiny/logs/finetune/full/bio/seed0.log").read_text()
    assert "step 10/10" in log and "KL " in log
    assert (tiny_run / "results/tiny/benchmarks/finetune/full/bio/seed0.tsv").is_file()


def finetuned_runs(output: str) -> set[str]:
    """Runs that a Snakemake invocation fine-tuned, from its job listing."""
    runs, in_finetune = set(), False
    for line in output.splitlines():
        if re.match(r"^(local)?(rule|checkpoint) \w+:$", line):
            in_finetune = line.split()[-1] == "finetune:"
        elif in_finetune and line.strip().startswith("wildcards:"):
            fields = dict(part.split("=") for part in line.split(":", 1)[1].strip().split(", "))
            runs.add(f"{fields['run']}/{fields['task']}")
    return runs


def test_search_trace_and_pick(tiny_run):
    search = tiny_run / "results/tiny/search/tree/bio"
    trace = pd.read_csv(search / "trace.csv")
    assert trace["depth"].tolist() == [0, 1, 1, 1, 2, 2]
    assert trace["id"].tolist()[:4] == ["root", "r0-50_mha-ffn", "r25-75_mha-ffn", "r50-100_mha-ffn"]
    depth1 = trace[trace["depth"] == 1]
    best = depth1.sort_values(["value", "id"], ascending=[False, True]).iloc[0]
    assert (depth1["status"] == "expanded").sum() == 1 and depth1.loc[depth1["status"] == "expanded", "id"].item() == best["id"]
    assert set(trace[trace["depth"] == 2]["parent"]) == {best["id"]}
    assert (trace["uni"] - (trace["spec"] + trace["vers"]) / 2).abs().max() < 0.02
    result = json.loads((search / "result.json").read_text())
    assert result["selection_split"] == "val" and len(result["trained"]) == 5
    picked = trace[trace["selected"]]
    assert picked["id"].item() == result["selected"] and picked["on_path"].item()
    assert (search / "tree.png").stat().st_size > 10_000 and (search / "table.md").is_file()
    table = pd.read_csv(tiny_run / "results/tiny/tables/main.csv")
    assert table.set_index(["method", "task"]).loc[("cofitune_coarse", "bio"), "detail"] == result["selected"]
    run = json.loads((tiny_run / f"results/tiny/runs/{result['run']}/bio/seed0/model/cofi_run.json").read_text())
    assert run["method"] == "region" and run["trainable"] and all(".layers." in n for n in run["trainable"])


def test_soft_mask_run_trains_the_pick_with_importance_the_dag_built(tiny_run):
    from cofi.methods.cofitune.importance import load_importance

    result = json.loads((tiny_run / "results/tiny/search/tree/rotate/result.json").read_text())
    run = json.loads((tiny_run / "results/tiny/runs/cofitune_update/rotate/seed0/model/cofi_run.json").read_text())
    coarse = json.loads((tiny_run / f"results/tiny/runs/{result['run']}/rotate/seed0/model/cofi_run.json").read_text())
    assert run["method"] == "cofitune" and run["trainable"] == coarse["trainable"]
    assert run["params"]["softmask"] == "update" and run["params"]["range"] == coarse["params"]["range"]
    importance = load_importance(tiny_run / "results/tiny/importance/rotate.safetensors")
    assert importance["head"].shape == (4, 4) and (tiny_run / "results/tiny/importance/rotate.png").stat().st_size > 5_000
    log = (tiny_run / "results/tiny/logs/finetune/cofitune_update/rotate/seed0.log").read_text()
    assert "soft mask mode update, scaling the update" in log


def test_widening_the_beam_trains_only_new_candidates(tiny_run):
    def pick(task):
        return json.loads((tiny_run / f"results/tiny/search/tree/{task}/result.json").read_text())["selected"]

    picked_before = {task: pick(task) for task in ("bio", "rotate")}
    before = {r: json.loads((tiny_run / f"results/tiny/search/tree/{r}/result.json").read_text())["trained"] for r in ("bio", "rotate")}
    stamps = {p: p.stat().st_mtime_ns for p in (tiny_run / "results/tiny/runs").glob("*/*/seed0/model/model.safetensors")}
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["search"]["beam"] = 2
    (tiny_run / "beam2.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tiny_run, "--configfile", "beam2.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    after = {r: json.loads((tiny_run / f"results/tiny/search/tree/{r}/result.json").read_text())["trained"] for r in ("bio", "rotate")}
    new = {f"region-{c}/{task}" for task in after for c in set(after[task]) - set(before[task])}
    # CoFiTune retrains only where the wider search changed the pick.
    new |= {f"cofitune_update/{task}" for task in after if picked_before[task] != pick(task)}
    assert new and finetuned_runs(done.stdout + done.stderr) == new
    retrained = {tiny_run / f"results/tiny/runs/{run}/seed0/model/model.safetensors" for run in new}
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p not in retrained)  # the rest untouched
    # Restore the beam-1 search so the other tests see the state they expect.
    assert snakemake(tiny_run, "--configfile", "tiny.yaml").returncode == 0


def test_the_search_over_region_and_lr_trains_each_candidate_at_each_lr_and_reuses_finished_runs(tiny_run):
    """search.lr: every candidate trains at every lr (runs keyed by region and lr), scores as its best, and the
    pick's lr reaches the CoFiTune run; a longer lr list retrains nothing, tree and grid alike. (An experiment of
    its own on bio, through the job server.)"""
    from cofi.devtools.jobserver import serving
    from cofi.search.policy import Policy, best_variant

    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["experiment"], config["tasks"] = "search-lr", {"bio": config["tasks"]["bio"]}
    results = tiny_run / "results/search-lr"

    def search(mode, lrs, *targets):
        (tiny_run / "search_lr.yaml").write_text(yaml.safe_dump({**config, "search": {**config["search"], "mode": mode,
                                                                                       "lr": lrs}}))
        with serving(snakemake_environment()) as environment:
            done = snakemake(tiny_run, "search_all", *targets, "--configfile", "search_lr.yaml", env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
        return finetuned_runs(done.stdout + done.stderr)

    search("tree", None)  # the reference's lr alone (0.001): folder tree, runs region-<id>
    single = json.loads((results / "search/tree/bio/result.json").read_text())
    stamps = {p: p.stat().st_mtime_ns for p in results.glob("runs/*/bio/seed0/model/model.safetensors")}
    cofitune = "results/search-lr/runs/cofitune_update/bio/seed0/model"
    trained = search("tree", [0.001, 0.003], cofitune)
    result = json.loads((results / "search/tree_lr0.001-0.003/bio/result.json").read_text())
    assert set(single["runs"]) <= set(result["runs"]) and all(stamp == p.stat().st_mtime_ns for p, stamp in stamps.items())
    new = {run for run in result["runs"] if run not in single["runs"]}
    assert new and all(run.endswith("_lr0.003") for run in new)
    assert {run.split("/")[0] for run in trained} == new | {"cofitune_update"}  # and nothing else trained
    policy = Policy(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["search"].items() if k != "lr"})
    reference_spec = result["nodes"][0]["spec"]
    for node in result["nodes"][1:]:
        variants = {float(lr): scores for lr, scores in node["variants"].items()}
        assert set(variants) == {0.001, 0.003} and node["lr"] == best_variant(variants, policy, reference_spec)
        assert node["run"] == f"region-{node['id']}" + ("_lr0.003" if node["lr"] == 0.003 else "")
        run = json.loads((results / f"runs/{node['run']}/bio/seed0/model/cofi_run.json").read_text())
        assert run["run"]["train"]["lr"] == node["lr"]
    spec = json.loads((tiny_run / cofitune / "cofi_run.json").read_text())["run"]
    assert spec["train"]["lr"] == result["lr"] and spec["params"]["range"] == json.loads(
        (results / f"runs/{result['run']}/bio/seed0/model/cofi_run.json").read_text())["run"]["params"]["range"]

    search("grid", [0.001, 0.003])
    grid = json.loads((results / "search/grid_lr0.001-0.003/bio/result.json").read_text())
    assert len(grid["trained"]) == 21 and len(grid["runs"]) == 42 and set(result["runs"]) <= set(grid["runs"])
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())


def test_the_snr_search_trains_nothing_and_its_pick_reaches_the_cofitune_run(tiny_run):
    """search.mode snr: the base model's matrix SNR once, each task's ranking of the grid's regions, no candidate
    trained; the CoFiTune run then trains the snr pick (a dry run: the tiny run's own models stay as they are)."""
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    (tiny_run / "snr.yaml").write_text(yaml.safe_dump({**config, "search": {**config["search"], "mode": "snr"}}))
    done = snakemake(tiny_run, "search_all", "--configfile", "snr.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not finetuned_runs(done.stdout + done.stderr)
    results = tiny_run / "results/tiny/search/snr"
    snr = pd.read_csv(results / "matrix_snr.csv")
    assert len(snr) == 7 * config["embedded"]["base"]["layers"] and (snr["snr"] > 0).all()
    result = json.loads((results / "bio/result.json").read_text())
    assert result["criterion"] == "snr" and result["trained"] == [] and result["run"] == f"region-{result['selected']}"
    assert json.loads((results / "rotate/result.json").read_text())["selected"] == result["selected"]  # the model's
    planned = snakemake(tiny_run, "results/tiny/runs/cofitune_update/bio/seed0/model", "-n", "-p", "--forcerun",
                        "finetune", "--configfile", "snr.yaml")  # the target first: --configfile takes every value after it
    assert planned.returncode == 0, planned.stderr[-3000:]
    region = parse_region_id(result["selected"])
    spec = next(json.loads(re.search(r"--spec '(.*?)'", line).group(1)) for line in planned.stdout.splitlines()
                if "cofi finetune" in line and "cofitune_update" in line)
    assert spec["run"]["params"]["range"] == [str(region.lo), str(region.hi)]
    assert spec["run"]["params"]["modules"] == list(region.modules)


def test_the_realignment_probe_scores_each_rows_models_again_beside_the_base_models(tiny_run):
    """realign.runs: the run's models and the base model's, a few steps on the Vers examples, scored again; the
    table pairs them. The probe starts from the run's model (the same first batch at the same seed has another loss
    than the base model's probe), trains the configured steps, and leaves no model behind."""
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["realign"] = {"runs": ["full"], "examples": 4, "steps": 3}
    (tiny_run / "realign.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tiny_run, "realign_table", "--configfile", "realign.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not finetuned_runs(done.stdout + done.stderr)  # no run trained again: only the probes
    realign = tiny_run / "results/tiny/realign"
    assert len((tiny_run / "results/tiny/data/realign_examples.jsonl").read_text().splitlines()) == 4
    curves = {row: pd.read_csv(realign / row / "bio/seed0/loss.csv") for row in ("base", "full")}
    assert all(curve["step"].max() == 3 for curve in curves.values())
    assert not any((realign / row / "bio/seed0/model").exists() for row in curves)
    assert curves["full"]["loss"].iloc[0] != pytest.approx(curves["base"]["loss"].iloc[0], rel=1e-3)
    after = {row: json.loads((realign / row / "bio/seed0/test_scores.json").read_text()) for row in ("base", "full")}
    table = pd.read_csv(tiny_run / "results/tiny/tables/realign.csv").set_index(["method", "task", "suite"])
    assert set(table.index) == {("full", t, s) for t in ("bio", "rotate") for s in ("know", "reason", "instruct", "vers")}
    main = pd.read_csv(tiny_run / "results/tiny/tables/main.csv").set_index(["method", "task"])
    assert table.loc[("full", "bio", "reason"), "before"] == pytest.approx(main.loc[("full", "bio"), "reason"], abs=1e-3)
    assert table.loc[("full", "bio", "reason"), "after"] == pytest.approx(after["full"]["reason"], abs=1e-6)
    assert "Realignment probe" in (tiny_run / "results/tiny/tables/realign.md").read_text()


def test_tables_figures_and_landscapes(tiny_run):
    tables, plots = tiny_run / "results/tiny/tables", tiny_run / "results/tiny/plots"
    for name in ("main.md", "main.tex", "normalised.md", "normalised.tex", "seeds.csv", "sharpness.md", "sharpness_correlation.csv"):
        assert (tables / name).stat().st_size > 100, name
    assert r"\toprule" in (tables / "main.tex").read_text() and "Spec % ref" in (tables / "normalised.md").read_text()
    # the tiny world's Reason and Instruct are generation (Know is multiple choice): each row's format rows
    formats = pd.read_csv(tables / "format.csv")
    assert {("full", "bio", "reason"), ("full", "rotate", "instruct")} <= set(
        zip(formats["method"], formats["task"], formats["suite"]))
    assert (formats["lenient"] >= formats["strict"] - 1e-9).all() and not {"know", "spec"} & set(formats["suite"])
    assert "| full | bio | Reason |" in (tables / "format.md").read_text()
    claims = pd.read_csv(tables / "claims.csv")
    assert "kl_forecast" in set(claims["claim"])  # two runs measured their KL: too few to rank, so not tested
    for name in ("uni", "pareto_bio", "pareto_rotate", "landscape_bio"):
        assert (plots / f"{name}.png").stat().st_size > 10_000 and (plots / f"{name}.pdf").is_file(), name
    assert {"search_tree_bio.png", "importance_rotate.png"} <= {p.name for p in plots.iterdir()}
    sharpness = pd.read_csv(tables / "sharpness.csv")
    assert sorted(zip(sharpness["run"], sharpness["task"])) == [("base", "bio"), ("base", "rotate"), ("full", "bio"), ("full", "rotate")]
    landscape = json.loads((tiny_run / "results/tiny/landscape/bio/full.json").read_text())
    scores = json.loads((tiny_run / "results/tiny/runs/full/bio/seed0/test_scores.json").read_text())
    assert sharpness.set_index(["run", "task"]).loc[("full", "bio"), "vers"] == pytest.approx(scores["vers"], abs=1e-3)
    # The claims table: every claim has a line; the tiny config has no cofitune_grad, SAM or sft_tuned rows, so
    # those claims are not tested, while the region claim reads the searches.
    claims = pd.read_csv(tables / "claims.csv")
    assert len(set(claims["claim"])) == 8 and "**not tested**" in (tables / "claims.md").read_text()
    assert set(claims.loc[claims["claim"] == "paper_region", "task"]) == {"bio", "rotate"}
    assert len(landscape["loss_1d"]["spec"]) == 5 and len(landscape["loss_2d"]["vers"]) == 3


def test_table_options_rebuild_only_tables_and_figures(tiny_run):
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["tables"] = {"digits": 3, "show_std": False}
    (tiny_run / "digits.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dry = snakemake(tiny_run, "--configfile", "digits.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = {line.split()[0] for line in dry.stdout.splitlines() if re.match(r"^\w+\s+\d+$", line) and not line.startswith("total")}
    assert jobs == {"main_table", "result_plots", "claims_table", "all"}
    try:
        assert snakemake(tiny_run, "--configfile", "digits.yaml").returncode == 0
        assert re.search(r"\| full +\| +(\*\*)?\d+\.\d{3}(\*\*)? ", (tiny_run / "results/tiny/tables/main.md").read_text())
    finally:
        assert snakemake(tiny_run, "--configfile", "tiny.yaml").returncode == 0  # back to the tiny config's tables


def test_the_job_server_and_another_instruction_set_change_nothing_but_the_time(tiny_run, tmp_path):
    """The tiny workflow through the job server (cofi/devtools/jobserver.py), its environment asking for the CPU paths of
    another machine (torch's scalar kernels, MKL at SSE4.2), gives the plain run's tables, scores and weights
    byte for byte, every job having run in the server: the jobs compute under pinned kernels (cofi/models/kernels.py).
    Without the pin the fine-tuned weights differ."""
    from cofi.devtools.jobserver import serving

    copy = copy_workflow(tmp_path / "warm")
    another_machine = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "MKL_CBWR": "COMPATIBLE"}
    with serving(snakemake_environment() | another_machine) as environment:
        done = snakemake(copy, "--configfile", "tiny.yaml", env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    plain, warm = tiny_run / "results/tiny", copy / "results/tiny"
    logs = list((warm / "logs").rglob("*.log"))
    assert logs and all("cofi: job server process" in log.read_text() for log in logs), \
        [str(log) for log in logs if "cofi: job server process" not in log.read_text()][:3]
    # (the plain run's folder may hold more: other tests widen its search)
    compared = [*(warm / "tables").iterdir(), *(warm / "runs").rglob("*_scores.json"),
                *(warm / "runs").rglob("model.safetensors"), warm / "base_model/model.safetensors"]
    assert len(compared) > 10
    for path in compared:
        assert (plain / path.relative_to(warm)).read_bytes() == path.read_bytes(), path.relative_to(warm)


def test_html_report(tiny_run):
    done = snakemake(tiny_run, "--configfile", "tiny.yaml", "--report", "report.html")
    assert done.returncode == 0, done.stderr[-3000:]
    html = (tiny_run / "report.html").read_text()
    assert len(html) > 100_000 and "main.csv" in html and "pareto_bio.png" in html and "landscape" in html.lower()


def test_second_run_has_nothing_to_do(tiny_run):
    done = snakemake(tiny_run, "--configfile", "tiny.yaml")
    assert done.returncode == 0
    assert "Nothing to be done" in done.stdout + done.stderr


def test_every_rule_passes_its_job_one_spec_the_job_reads(tiny_run):
    """Each job's command line, as Snakemake recorded it for the finished tiny run, is its spec (and the rule's
    threads where it computes), and the spec builds its job. The rules whose spec lists every run's files pipe it
    (``printf '%s' SPEC | python -m cofi JOB --spec -``: it outgrows one argument in a large study); no other does."""
    import base64
    import shlex

    from cofi.jobs import JOBS, job_class
    from cofi.jobs.interface import job_from

    seen, piped = set(), set()
    for record in (tiny_run / ".snakemake" / "metadata").iterdir():
        command = json.loads(record.read_text()).get("shellcmd") or ""
        if " -m cofi " not in command:
            continue
        words = shlex.split(command)
        start = next(k for k in range(len(words) - 1) if words[k:k + 2] == ["-m", "cofi"])
        name, rest = words[start + 2], words[start + 3:words.index(">")]
        where = base64.b64decode(record.name).decode()
        assert rest[0] == "--spec" and (rest[2:] == [] or rest[2] == "--threads" and len(rest) == 4), where
        assert (len(rest) == 4) == job_class(name).computes, where
        spec = rest[1]
        if words[0] == "printf":
            assert words[1] == "%s" and words[3] == "|" and spec == "-", where
            spec = words[2]
            piped.add(name)
        job_from(job_class(name), json.loads(spec), where)
        seen.add(name)
    # the tiny config builds its base model: a GGUF's import and a hub id's fetch run in their own tests' workflows
    assert seen == set(JOBS) - {"import-gguf", "fetch-model"}
    assert piped == {"table", "plots", "loss-curves", "claims", "sharpness", "realign-table"}


def test_a_call_that_ends_with_its_targets_unfinished_fails_and_says_so(tiny_run, tmp_path):
    """The completion check (rules/completion.smk) on a real call whose targets are left out of date: here a
    data file changes after the call built its DAG (an onstart hook of this copy), as jobs are left behind when
    Snakemake ends a call early. The call exits non-zero naming what is left; the next call finishes it."""
    copy = tmp_path / "early"
    shutil.copytree(tiny_run, copy, symlinks=True)  # copy2: the finished files keep their times
    snakefile = (copy / "Snakefile").read_text()
    (copy / "Snakefile").write_text(snakefile + "\n\nonstart:\n    from pathlib import Path\n\n"  # new content: a
                                    "    data = Path('results/tiny/data/rotate_test.jsonl')\n"  # touch alone is no change
                                    "    data.write_text(data.read_text() + data.read_text().splitlines(True)[0])\n")
    early = snakemake(copy, "tables", "--configfile", "tiny.yaml", "--forcerun", "main_table")
    assert early.returncode == 75, early.stderr[-2000:]  # EX_TEMPFAIL: the same call again finishes it
    message = next(line for line in early.stderr.splitlines() if "still to do" in line)
    assert "evaluate_run" in message and "main_table (1)" in message and "run snakemake again" in message
    (copy / "Snakefile").write_text(snakefile)
    again = snakemake(copy, "tables", "--configfile", "tiny.yaml")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "still to do" not in again.stderr
    assert "Nothing to be done" in snakemake(copy, "tables", "--configfile", "tiny.yaml", "--dry-run").stdout
    # A call that asks for part of the work is not checked: here the table job alone, its figures left out of date.
    part = snakemake(copy, "tables", "--configfile", "tiny.yaml", "--forcerun", "main_table", "--until", "main_table")
    assert part.returncode == 0, part.stderr[-2000:]
    assert "not checking that every target is done: this call asked for part of the work" in part.stderr


def test_bad_config_stops_before_any_job(workflow_copy):
    config = yaml.safe_load((workflow_copy / "tiny.yaml").read_text())
    config["experiment"] = "broken"
    config["tasks"]["bio"]["metric"] = "bleu"
    (workflow_copy / "broken.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(workflow_copy, "--configfile", "broken.yaml")
    assert done.returncode != 0
    assert "config key tasks.bio.metric: unknown metric 'bleu'" in done.stdout + done.stderr
    assert not (workflow_copy / "results/broken").exists()


def test_a_configfile_replaces_the_default_config(workflow_copy):
    config = yaml.safe_load((workflow_copy / "tiny.yaml").read_text())
    config["experiment"] = "only-bio"
    del config["tasks"]["rotate"]
    (workflow_copy / "only_bio.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(workflow_copy, "--configfile", "only_bio.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = dict(line.split() for line in done.stdout.splitlines() if line.startswith(("finetune ", "evaluate_")))
    # Bio only: Full SFT, with test scores for the sharpness table (its run's job) and validation scores for the
    # search's root (the one model's job: no sweep asks for every seed's), and the CoFiTune run the loss curves
    # ask for (waiting on the search; a dry run stops at the search's first checkpoint, so nothing else behind
    # it is listed).
    assert jobs == {"finetune": "2", "evaluate_run": "1", "evaluate_model": "1", "evaluate_base": "1"}


def test_user_model_and_jsonl_paths_take_the_same_rules(tiny_run):
    """A user's checkpoint and data: no embedded data or base model is built, the rest runs as usual."""
    data = tiny_run / "results/tiny/data"
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["experiment"] = "user"
    config["search"]["enabled"] = False
    config["runs"] = {"full": {}, "vsoftmask": {"softmask": "grad"}}  # its importance: from law's inputs
    config["model"] = {"path": str(tiny_run / "results/tiny/base_model")}
    config["tasks"] = {"law": {"train": str(data / "rotate_train.jsonl"), "test": str(data / "rotate_test.jsonl"), "type": "generation"}}
    config["versatility"] = {name: {"test": str(data / f"{name}_test.jsonl"), **kind} for name, kind in [
        ("know", {"type": "multiple_choice"}), ("reason", {"type": "generation"}), ("instruct", {"type": "generation"})]}
    (tiny_run / "user.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tiny_run, "--configfile", "user.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rule build_base" not in done.stdout + done.stderr and not (tiny_run / "results/user/data").exists()
    table = pd.read_csv(tiny_run / "results/user/tables/main.csv")
    assert table[["method", "task"]].values.tolist() == [["base", "law"], ["full", "law"], ["vsoftmask", "law"]]
    assert (tiny_run / "results/user/importance/law.safetensors").is_file()
    tiny = pd.read_csv(tiny_run / "results/tiny/tables/main.csv")
    # Same base model, same suites: the base row's versatility matches the embedded run's.
    assert table.iloc[0]["vers"] == tiny.iloc[0]["vers"]


def test_versatility_from_harness_tasks_goes_through_the_search_tables_and_claims(tiny_run):
    """Vers from lm-eval harness tasks (written here over the tiny world's suites, so offline), a speciality task
    of cofi's own beside them; the search selects on the harness's scores (selection: test). The base row's Vers
    equals the tiny run's, which cofi scored itself on the same items."""
    from cofi.evaluation.lm_eval import write_local_task

    data, tasks = tiny_run / "results/tiny/data", tiny_run / "harness_tasks"
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    for name, kind in (("know", "multiple_choice"), ("reason", "generation"), ("instruct", "generation")):
        write_local_task(tasks, f"tiny_{name}", data / f"{name}_test.jsonl", kind, config["prompt"]["template"],
                         max_gen_toks=8)
    config["experiment"] = "harness"
    config["model"] = {"path": str(tiny_run / "results/tiny/base_model")}
    config["tasks"] = {"rotate": {"train": str(data / "rotate_train.jsonl"), "test": str(data / "rotate_test.jsonl"),
                                  "type": "generation"}}
    config["versatility"] = {name: {"lm_eval": [f"tiny_{name}"], "include": str(tasks)}
                             for name in ("know", "reason", "instruct")}
    config["runs"] = {"full": {}}
    config["selection"] = "test"
    config["search"]["eval_items"] = 6  # the candidates on a sample of 6 items a suite; the rows on all 12
    config["search"]["schedule"] = ["halves"]  # one depth: selecting on the harness's scores is what is tested
    config["landscape"]["runs"] = []
    (tiny_run / "harness.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tiny_run, "--configfile", "harness.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    results = tiny_run / "results/harness"
    base, tiny_base = (json.loads((root / "scores/base.json").read_text()) for root in (results, tiny_run / "results/tiny"))
    assert base["item_scores"]["vers"] == tiny_base["item_scores"]["vers"]  # item for item
    table = pd.read_csv(results / "tables/main.csv")
    assert set(table["method"]) >= {"base", "full", "cofitune_coarse"}
    assert table.iloc[0]["vers"] == pd.read_csv(tiny_run / "results/tiny/tables/main.csv").iloc[0]["vers"]
    assert list((results / "search/tree_items6_seed0").rglob("result.json")), "the search, on the harness's scores"
    sampled = [json.loads(p.read_text()) for p in (results / "runs").rglob("val_items6_seed0_scores.json")]
    assert sampled and all(s["items"] == {"rotate": 6, "know": 6, "reason": 6, "instruct": 6} for s in sampled)
    assert (results / "tables/claims.md").is_file()
    logs = "".join(p.read_text() for p in (results / "logs").glob("evaluate_*/**/*.log"))
    assert "harness tasks tiny_know" in logs


def test_lint_passes():
    done = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr


def test_every_baseline_goes_through_the_same_rules(tiny_run):
    """LoRA on a range, L1, L2, replay, Wise-FT (a list of alpha), SAM and its equal-compute control, on one task."""
    data = tiny_run / "results/tiny/data"
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    config["experiment"] = "baselines"
    config["search"]["enabled"] = False
    config["model"] = {"path": str(tiny_run / "results/tiny/base_model")}
    config["tasks"] = {"rotate": {"train": str(data / "rotate_train.jsonl"), "val": str(data / "rotate_val.jsonl"),
                                  "test": str(data / "rotate_test.jsonl"), "type": "generation"}}
    config["versatility"] = {name: {"test": str(data / f"{name}_test.jsonl"), "val": str(data / f"{name}_val.jsonl"), **kind}
                             for name, kind in [("know", {"type": "multiple_choice"}), ("reason", {"type": "generation"}),
                                                ("instruct", {"type": "generation"})]}
    config["runs"] = {
        "full": {},
        "full_sam": {"method": "full", "sam": {"rho": 0.05}},
        "full_2x": {"method": "full", "equal_compute": True},
        "lora_top": {"method": "lora", "range": [0.5, 1.0], "rank": 2, "lr": 0.01},
        "l1": {"lambda": 1e-4},
        "l2": {"lambda": 0.1},
        "replay": {"fraction": 0.25, "data": str(data / "versatility_train.jsonl")},
        "wiseft": {"alpha": [0.0, 0.5, 1.0]},
    }
    (tiny_run / "baselines.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # rows in config order
    done = snakemake(tiny_run, "--configfile", "baselines.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tiny_run / "results/baselines/tables/main.csv").set_index("method")
    assert list(table.index) == ["base", "full", "full_sam", "full_2x", "lora_top", "l1", "l2", "replay",
                                 "wiseft_alpha0", "wiseft_alpha0.5", "wiseft_alpha1", "wiseft_tuned"]
    scores = ["spec", "know", "reason", "instruct", "vers", "uni"]
    # Wise-FT at alpha 0 is the base model and at 1 is Full SFT, weight for weight, hence score for score.
    assert table.loc["wiseft_alpha0", scores].tolist() == table.loc["base", scores].tolist()
    assert table.loc["wiseft_alpha1", scores].tolist() == table.loc["full", scores].tolist()
    # The tuned row repeats the test scores of the alpha with the best validation Uni.
    val_uni = {a: json.loads((tiny_run / f"results/baselines/runs/wiseft_alpha{a}/rotate/seed0/val_scores.json").read_text())["uni"]["rotate"]
               for a in ("0", "0.5", "1")}
    best = max(val_uni, key=lambda a: (val_uni[a], -list(val_uni).index(a)))
    assert table.loc["wiseft_tuned", "detail"] == f"alpha={best}"
    assert table.loc["wiseft_tuned", scores].tolist() == table.loc[f"wiseft_alpha{best}", scores].tolist()
    runs = tiny_run / "results/baselines/runs"
    curve = lambda run: pd.read_csv(runs / f"{run}/rotate/seed0/loss.csv")
    assert len(curve("full")) == 10 and len(curve("full_2x")) == 20 and curve("wiseft_alpha0.5").empty
    assert curve("full_sam")["sam_loss"].notna().all() and curve("full")["sam_loss"].isna().all()
    assert (curve("l2")["penalty"].iloc[1:] > 0).all()
    assert (runs / "lora_top/rotate/seed0/model/adapter/adapter_model.safetensors").is_file()
    lora = json.loads((runs / "lora_top/rotate/seed0/model/cofi_run.json").read_text())
    assert lora["trainable"] and all(".layers.3." in n or ".layers.2." in n for n in lora["trainable"])
    log = (tiny_run / "results/baselines/logs/finetune/replay/rotate/seed0.log").read_text()
    assert "replay: 2 of every 8 examples" in log


def _finetune_pids(workdir: Path) -> list[int]:
    """Processes running `cofi finetune` inside ``workdir`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        if b"finetune" in command and b"cofi" in command and cwd == str(workdir):
            pids.append(int(entry.name))
    return pids


def test_a_killed_finetune_job_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL mid-run (as a preemption does), rerun the workflow: the same weights and scores."""
    import signal
    import time

    from safetensors.torch import load_file

    workdir = copy_workflow(tmp_path / "resume")
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["runs"] = {"full": {"steps": 400}}
    config["search"] = {"enabled": False}
    config["compute"] = {"checkpoint_every": 40}
    (workdir / "resume.yaml").write_text(yaml.safe_dump(config))
    run = "results/tiny/runs/full/bio/seed0"
    target = [f"{run}/test_scores.json", "--configfile", "resume.yaml"]  # --configfile takes several values: last

    done = snakemake(workdir, *target)
    assert done.returncode == 0, done.stderr[-3000:]
    whole_weights = load_file(workdir / run / "model" / "model.safetensors")
    whole_scores = json.loads((workdir / run / "test_scores.json").read_text())
    assert not (workdir / run / "checkpoints").exists()  # removed once the run's outputs were written
    shutil.rmtree(workdir / run)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    background = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *target], cwd=workdir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((workdir / run / "checkpoints").glob("step-*")):
        assert background.poll() is None and time.monotonic() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.01)
    killed = _finetune_pids(workdir)
    assert killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert background.wait(timeout=120) != 0  # the workflow saw its job die
    assert not (workdir / run / "model").exists() and list((workdir / run / "checkpoints").glob("step-*"))

    again = snakemake(workdir, *target)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (workdir / "results/tiny/logs/finetune/full/bio/seed0.log").read_text()
    assert "resuming from" in log
    resumed_weights = load_file(workdir / run / "model" / "model.safetensors")
    assert resumed_weights.keys() == whole_weights.keys()
    for name, tensor in whole_weights.items():
        assert torch.equal(resumed_weights[name], tensor), name
    resumed_scores = json.loads((workdir / run / "test_scores.json").read_text())
    assert {k: v for k, v in resumed_scores.items() if k != "model"} == {k: v for k, v in whole_scores.items() if k != "model"}
