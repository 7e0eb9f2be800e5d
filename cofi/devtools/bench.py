"""Per-rule times from the TSV files Snakemake's ``benchmark:`` directive writes, and how much of
them is the jobs' own work (the compute line each job logs) rather than start-up, loading and saving."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd


def logged_compute(log: Path) -> float:
    """The seconds of its own work a job's log names (its last compute line); 0 where it names none:
    the job was all start-up and bookkeeping (a table, a search step)."""
    from cofi.io import COMPUTE_PATTERN

    if not log.is_file():
        return 0.0
    found = re.findall(COMPUTE_PATTERN, log.read_text(errors="replace"), re.M)
    return float(found[-1]) if found else 0.0


def job_server_peak_rss(log: Path) -> float | None:
    """The job's peak memory in MB where it ran in the job server (its log says so), else None."""
    from cofi.devtools.jobserver import PEAK_RSS_PATTERN

    found = re.findall(PEAK_RSS_PATTERN, log.read_text(errors="replace"), re.M) if log.is_file() else []
    return float(found[-1]) if found else None


def read_benchmarks(directory: str | Path, logs: str | Path | None = None) -> pd.DataFrame:
    """One row per job; ``rule`` is the first folder under ``directory`` (rules name their own). A job's
    log has the benchmark's path under ``logs`` (default: the sibling ``logs/``), with ``.log``. A job run
    in the job server (:mod:`cofi.devtools.jobserver`) has its memory from its log: the benchmark measured its client."""
    directory = Path(directory)
    logs = Path(logs) if logs is not None else directory.parent / "logs"
    rows = []
    for path in sorted(directory.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        relative = path.relative_to(directory)
        log = (logs / relative).with_suffix(".log")
        peak = job_server_peak_rss(log)
        rows.append({"rule": relative.parts[0], "job": str(relative), "seconds": float(frame["s"].iloc[-1]),
                     "compute_s": logged_compute(log),
                     "max_rss_mb": peak if peak is not None else pd.to_numeric(frame["max_rss"], errors="coerce").iloc[-1]})
    if not rows:
        raise FileNotFoundError(f"{directory}: no benchmark files (run the workflow first)")
    return pd.DataFrame(rows)


def benchmark_report(directory: str | Path, logs: str | Path | None = None) -> str:
    """Per rule: jobs, job time, the jobs' logged compute and the overhead share (job time minus compute,
    over job time); then the same over all jobs."""
    jobs = read_benchmarks(directory, logs)
    per_rule = jobs.groupby("rule", sort=False).agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), compute_s=("compute_s", "sum"), max_s=("seconds", "max"),
        max_rss_mb=("max_rss_mb", "max"))
    per_rule.insert(3, "overhead_%", 100 * (1 - per_rule["compute_s"] / per_rule["total_s"]))
    total, compute = jobs["seconds"].sum(), jobs["compute_s"].sum()
    return (
        per_rule.round(1).to_markdown()
        + f"\n\nsum of job times: {total:.1f} s over {len(jobs)} jobs; logged compute {compute:.1f} s; "
        f"overhead {total - compute:.1f} s ({100 * (1 - compute / total):.1f} % of job time)\n"
    )


def search_efficiency(searches: dict[str, str | Path], benchmarks: str | Path | None = None,
                      seed: int = 0, stems: dict[str, str] | None = None, runs: str | Path | None = None) -> pd.DataFrame:
    """Per task and search ({name: its folder}, the widest last, e.g. the grid over region x lr): candidates
    and trainings (a candidate trains once per lr of search.lr), the training time from the finetune jobs'
    benchmark files (``benchmarks``) at the search's ``seed`` (search.mode snr: none, and the seconds of its
    singular values instead) (the pick is trained at every seed later: only the
    search's own trainings count), the pick (region at lr) and the Uni gap of its pick to the widest search's
    best, all on the selection (validation) scores the searches used. A negative gap means the pick beats the
    widest search's best (possible only through the tie rule or a smaller region).

    With ``stems`` ({name: the stem of the score files it read}, e.g. ``val`` or ``val_items50_seed0``: a search on a
    sample of the items) also the time spent scoring its candidates (the evaluate_model jobs of those files), and,
    with ``runs`` (results/<experiment>/runs), its pick's validation Uni on the whole suites (``val_scores.json``,
    where some search scored it so): what a search on a sample saves, and what its pick is worth."""
    import json

    def seconds(rule: str, task: str, runs_: list[str], stem: str) -> float:
        if benchmarks is None:
            return float("nan")
        files = [Path(benchmarks, rule, run, task, f"seed{seed}{stem}.tsv") for run in runs_]
        if not any(f.is_file() for f in files):
            return float("nan")
        return sum(float(pd.read_csv(f, sep="\t")["s"].iloc[-1]) for f in files if f.is_file())

    def snr_seconds() -> float:
        path = Path(benchmarks or "", "matrix_snr.tsv")
        return float(pd.read_csv(path, sep="\t")["s"].iloc[-1]) if benchmarks is not None and path.is_file() else float("nan")

    def uni(task: str, run: str, stem: str = "val") -> float:
        path = Path(runs or "", run, task, f"seed{seed}", f"{stem}_scores.json")
        return json.loads(path.read_text())["uni"][task] if runs is not None and path.is_file() else float("nan")

    def pick_uni(result: dict, stem: str) -> float:
        """The pick's selection Uni: the search's own, or (search.mode snr, which scores nothing) its run's scores
        where another search trained and scored it."""
        return result["scores"]["uni"] if result.get("scores") else uni(result["task"], result["run"], stem)

    results = {name: {p.parent.name: json.loads(p.read_text()) for p in Path(folder).glob("*/result.json")}
               for name, folder in searches.items()}
    widest = list(searches)[-1]
    rows = []
    for task, best in sorted(results[widest].items()):
        for name, by_task in results.items():
            if task not in by_task:
                continue
            result = by_task[task]
            trained = result.get("runs", [f"region-{c}" for c in result["trained"]])  # results before search.lr
            row = {"task": task, "search": name, "candidates": len(result["trained"]), "trainings": len(trained),
                   "training_s": seconds("finetune", task, trained, ""),
                   # what snr spends instead: the base model's singular values, once for every task
                   "snr_s": snr_seconds() if result.get("criterion") == "snr" else float("nan"),
                   "pick": f"{result['selected']} @ lr {format(result.get('lr', float('nan')), 'g')}",
                   "pick_uni": (value := pick_uni(result, (stems or {}).get(name, "val"))),
                   "uni_gap": pick_uni(best, (stems or {}).get(widest, "val")) - value}
            if stems is not None:
                row["scoring_s"] = seconds("evaluate_model", task, trained, f"_{stems[name]}")
                row["pick_uni_whole"] = uni(task, result.get("run", f"region-{result['selected']}"))
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"{searches[widest]}: no search results (run the searches first)")
    return pd.DataFrame(rows)


def measure_training_step(model_dir: str, train_file: str, template: str, method: str, params: dict,
                          steps: int, warmup: int, width: int | None, threads: int) -> dict:
    """Seconds per optimizer step and memory of one method, measured with the real trainer.

    ``width`` rebuilds the model at that hidden size (intermediate 2x, same depth and vocabulary,
    random weights) so that training memory, not the Python runtime, dominates what is measured.
    """
    import tempfile

    import torch

    from cofi.data.records import load_records
    from cofi.training.distributed import host_memory_mb
    from cofi.config.runs import Run
    from cofi.methods import METHODS, Inputs
    from cofi.models.loading import build_llama, load_model
    from cofi.config.settings import TrainSettings
    from cofi.training.loop import tokenize_dataset, train
    from cofi.data.prompts import Prompter

    torch.set_num_threads(threads)
    model, tokenizer = load_model(model_dir)
    if width:
        c = model.config
        arch = {"layers": c.num_hidden_layers, "hidden": width, "intermediate": 2 * width,
                "heads": c.num_attention_heads, "max_len": c.max_position_embeddings}
        model = build_llama(len(tokenizer), arch, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    settings = TrainSettings(lr=1e-4, steps=warmup + steps, batch_size=32, warmup_ratio=0.0, log_every=10**9)
    run = Run(name=method, method=method, params=params, train=settings)
    model = METHODS[method].setup(model, run, Inputs(seed=0, tokenize=None, load_model=None)).model
    examples = tokenize_dataset(load_records(train_file), Prompter(tokenizer, template), True, model.config.max_position_embeddings)
    rss_setup = host_memory_mb("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        curve_path = Path(tmp) / "curve.csv"
        train(model, examples, settings, 0, tokenizer.pad_token_id, curve_path, log=lambda _: None)
        curve = pd.read_csv(curve_path)
    timed = curve["seconds"].iloc[-1] - curve["seconds"].iloc[warmup - 1]
    return {"method": method, "params_total": n_params,
            "params_trained": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "s_per_step": timed / steps, "rss_setup_mb": rss_setup, "peak_rss_mb": host_memory_mb("VmHWM"),
            "training_mb": host_memory_mb("VmHWM") - rss_setup}


def region_vs_full(model_dir: str, train_file: str, template: str, region: dict, steps: int, warmup: int,
                   widths: list[int | None], repeats: int, threads: int) -> pd.DataFrame:
    """Full SFT and a region, alternated in fresh processes (so peaks do not mix); medians per width."""
    import json
    import subprocess
    import sys

    rows = []
    for width in widths:
        for _ in range(repeats):
            for method, params in (("full", {}), ("region", region)):
                command = [sys.executable, "-m", "cofi.devtools", "bench-step", "--model", model_dir, "--train", train_file,
                           "--template", template, "--method", method, "--params", json.dumps(params),
                           "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads)]
                if width:
                    command += ["--width", str(width)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                rows.append({"width": width or "default", **json.loads(done.stdout.strip().splitlines()[-1])})
    frame = pd.DataFrame(rows)
    return frame.groupby(["width", "method"], sort=False).median(numeric_only=True).reset_index()


def softmask_overhead(model_dir: str, train_file: str, template: str, region: dict, importance_path: str,
                      steps: int, warmup: int, repeats: int, threads: int) -> pd.DataFrame:
    """Seconds per step of a region trained plain, with the gradient mask and with the update mask.

    One process, variants alternated within each repeat (the order rotating from one repeat to the
    next) so drifts in machine speed and allocator warm-up hit all of them alike; each variant
    starts from a fresh copy of the same model. Median over repeats of the mean timed step.
    """
    import copy
    import tempfile

    import torch

    from cofi.data.records import load_records
    from cofi.methods.cofitune.importance import load_importance
    from cofi.models.loading import load_model
    from cofi.search.regions import Region, freeze_outside
    from cofi.config.settings import TrainSettings
    from cofi.methods.cofitune.softmask import SoftMask, mask_factors
    from cofi.training.loop import tokenize_dataset, train
    from cofi.data.prompts import Prompter

    torch.set_num_threads(threads)
    base, tokenizer = load_model(model_dir)
    importance = load_importance(importance_path, base.config)
    examples = tokenize_dataset(load_records(train_file), Prompter(tokenizer, template), True, base.config.max_position_embeddings)
    settings = TrainSettings(lr=1e-4, steps=warmup + steps, batch_size=32, warmup_ratio=0.0, log_every=10**9)
    rows, mask_op_seconds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            variants = ("none", "grad", "update")
            for variant in variants[repeat % 3:] + variants[:repeat % 3]:
                model = copy.deepcopy(base)
                names = freeze_outside(model, Region.make(*region["range"], region["modules"]), region["groups"])
                hooks = [] if variant == "none" else [SoftMask(model, mask_factors(model, names, importance, variant, 0), variant)]
                curve_path = Path(tmp) / f"{variant}{repeat}.csv"
                train(model, examples, settings, 0, tokenizer.pad_token_id, curve_path, log=lambda _: None,
                      extensions=hooks)
                if hooks:
                    mask_op_seconds.setdefault(variant, []).append(_time_mask_ops(hooks[0], model))
                seconds = pd.read_csv(curve_path)["seconds"]  # cumulative, in ms resolution
                rows.append({"mask": variant, "s_per_step": (seconds.iloc[-1] - seconds.iloc[warmup - 1]) / steps})
    # Many short alternating runs and their median: robust to the odd slow stretch of the machine.
    table = pd.DataFrame(rows).groupby("mask", sort=False)["s_per_step"].median().reset_index()
    plain = table.loc[table["mask"] == "none", "s_per_step"].item()
    table["vs_no_mask"] = table["s_per_step"] / plain
    # The mask's own work per step, timed alone: steadier than a difference of two noisy step times.
    table["mask_op_s"] = [0.0 if m == "none" else float(np.median(mask_op_seconds[m])) for m in table["mask"]]
    table["plain_plus_op_vs_no_mask"] = (plain + table["mask_op_s"]) / plain
    return table


def _time_mask_ops(mask, model, calls: int = 200) -> float:
    """Seconds per step of what a SoftMask adds: the gradient scaling, or remembering and rescaling the update."""
    import time

    import torch

    for parameter, _ in mask.scaled:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    started = time.perf_counter()
    for _ in range(calls):
        if mask.target == "grad":
            mask.after_backward()
        else:
            mask._remember(None, (), {})
            mask._scale_update(None, (), {})
    return (time.perf_counter() - started) / calls


def mask_trajectory_gap(model_dir: str, train_file: str, template: str, region: dict, importance_path: str,
                        steps: int, lr: float, threads: int) -> pd.DataFrame:
    """How far each mask moves a region's weight change Δ from the unmasked run's, with and without clipping.

    Same data order and start; ``gap`` = ‖Δ_mask − Δ_plain‖ / ‖Δ_plain‖. Under AdamW a per-row
    gradient scale divides out of m/√v, so the gradient mask's gap is what the global-norm clipping
    (and Adam's ε) let through; the update mask's cannot cancel.
    """
    import copy
    import tempfile

    import torch

    from cofi.data.records import load_records
    from cofi.methods.cofitune.importance import load_importance
    from cofi.models.loading import load_model
    from cofi.search.regions import Region, freeze_outside
    from cofi.config.settings import TrainSettings
    from cofi.methods.cofitune.softmask import SoftMask, mask_factors
    from cofi.training.loop import tokenize_dataset, train
    from cofi.data.prompts import Prompter

    torch.set_num_threads(threads)
    base, tokenizer = load_model(model_dir)
    importance = load_importance(importance_path, base.config)
    examples = tokenize_dataset(load_records(train_file), Prompter(tokenizer, template), True, base.config.max_position_embeddings)
    start = dict(base.named_parameters())

    def weight_change(clip: float, mask: str | None) -> dict:
        model = copy.deepcopy(base)
        names = freeze_outside(model, Region.make(*region["range"], region["modules"]), region["groups"])
        hooks = [SoftMask(model, mask_factors(model, names, importance, mask, 0), mask)] if mask else []
        settings = TrainSettings(lr=lr, steps=steps, batch_size=32, max_grad_norm=clip, log_every=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            train(model, examples, settings, 0, tokenizer.pad_token_id, Path(tmp) / "curve.csv", log=lambda _: None,
                  extensions=hooks)
        trained = dict(model.named_parameters())
        return {n: (trained[n] - start[n]).detach() for n in names}

    def norm(tensors) -> float:
        return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))

    rows = []
    for clip in (1.0, 0.0):
        plain = weight_change(clip, None)
        for mask in ("grad", "update"):
            masked = weight_change(clip, mask)
            rows.append({"max_grad_norm": clip, "mask": mask, "norm_plain": norm(plain.values()),
                         "norm_masked": norm(masked.values()),
                         "gap": norm(masked[n] - plain[n] for n in plain) / norm(plain.values())})
    return pd.DataFrame(rows)


def sam_overhead(model_dir: str, train_file: str, template: str, rho: float, steps: int, warmup: int, repeats: int,
                 threads: int) -> pd.DataFrame:
    """Seconds per Full SFT step with plain AdamW and with SAM, alternated in one process.

    Same model, data and batch; each repeat trains a fresh copy with each optimizer, the order
    alternating, and the median over repeats of the mean timed step is reported with the ratio.
    """
    import copy
    import tempfile

    import torch

    from cofi.data.records import load_records
    from cofi.models.loading import load_model
    from cofi.training.sam import SAM
    from cofi.config.settings import TrainSettings
    from cofi.training.loop import tokenize_dataset, train
    from cofi.data.prompts import Prompter

    torch.set_num_threads(threads)
    base, tokenizer = load_model(model_dir)
    examples = tokenize_dataset(load_records(train_file), Prompter(tokenizer, template), True, base.config.max_position_embeddings)
    settings = TrainSettings(lr=1e-4, steps=warmup + steps, batch_size=32, warmup_ratio=0.0, log_every=10**9)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            variants = (0.0, rho) if repeat % 2 == 0 else (rho, 0.0)
            for sam_rho in variants:
                curve_path = Path(tmp) / f"{repeat}-{sam_rho}.csv"
                train(copy.deepcopy(base), examples, settings, 0, tokenizer.pad_token_id, curve_path, log=lambda _: None,
                      extensions=[SAM(sam_rho)] if sam_rho else [])
                seconds = pd.read_csv(curve_path)["seconds"]
                rows.append({"optimizer": "SAM + AdamW" if sam_rho else "AdamW",
                             "s_per_step": (seconds.iloc[-1] - seconds.iloc[warmup - 1]) / steps})
    table = pd.DataFrame(rows).groupby("optimizer", sort=False)["s_per_step"].median().reset_index()
    table["vs_adamw"] = table["s_per_step"] / table.loc[table["optimizer"] == "AdamW", "s_per_step"].item()
    return table


# --- precision and prompt on a real model: what a training step and a scoring cost --------------------------------


def measure_precision(model_dir: str, data_dir: str, task: str, precision: str, system: str | None, steps: int,
                      items: int, batch_size: int) -> dict:
    """One setting's costs, in this process (its CPU kernels are its environment's): seconds per Full SFT step on
    ``task``'s training data (8 examples a step, 2 threads, the real trainer; median after one untimed step) and per
    suite to score the first ``items`` of each versatility test suite (1 thread, as the workflow's evaluations run),
    with the scores: the same items and model in every setting, so the scores show what the setting changes."""
    import statistics
    import tempfile
    import time

    import torch

    from cofi.config.settings import ComputeSettings, PromptSettings, TrainSettings
    from cofi.data.chat_suites import SUITE_TYPES
    from cofi.data.prompts import Prompter
    from cofi.data.records import load_records
    from cofi.evaluation.tasks import TASK_TYPES
    from cofi.jobs.evaluate import scoring_autocast
    from cofi.models import kernels
    from cofi.models.loading import load_model
    from cofi.training.loop import tokenize_dataset, train

    model, tokenizer = load_model(model_dir)
    prompt = PromptSettings(chat_template=True, mask_prompt=True, max_len=96, system=system)  # configs/smollm2.yaml's
    prompter = Prompter.of(tokenizer, prompt)
    result = {"precision": precision, "system": "template's" if system is None else repr(system),
              "kernels": kernels.in_use().split(":")[0]}
    torch.set_num_threads(1)
    model.eval()
    metrics = {"know": "accuracy", "reason": "number", "instruct": "ifeval_strict"}
    for name, kind in SUITE_TYPES.items():
        records = TASK_TYPES[kind].read(Path(data_dir) / f"{name}_test.jsonl")[:items]
        started = time.perf_counter()
        with scoring_autocast(precision, model):
            scored = TASK_TYPES[kind].score(model, prompter, records, metrics[name], batch_size)
        result[f"{name}_s"], result[name] = round(time.perf_counter() - started, 1), round(scored["score"], 1)
    torch.set_num_threads(2)
    model.train()
    examples = tokenize_dataset(load_records(Path(data_dir) / f"{task}_train.jsonl"), prompter, prompt.mask_prompt,
                                prompt.max_len)
    result["tokens_per_example"] = round(sum(len(e["input_ids"]) for e in examples) / len(examples), 1)
    settings = TrainSettings(lr=1e-4, steps=steps + 1, batch_size=8, warmup_ratio=0.0, log_every=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        train(model, examples, settings, 0, tokenizer.pad_token_id, Path(tmp) / "curve.csv",
              compute=ComputeSettings(device="cpu", precision=precision), log=lambda _: None)
        seconds = pd.read_csv(Path(tmp) / "curve.csv")["seconds"].diff().dropna()
    result["step_s"] = round(statistics.median(seconds), 2)
    return result


def answer_room(model_dir: str, data_dir: str, suite: str, rooms: list[int | None], batch_size: int,
                precision: str = "bf16") -> pd.DataFrame:
    """A chat model's ``number`` suite scored at several answer lengths (``None``: the default room past the
    reference; an int: that many tokens), on the same items: each length's score with its 95 % interval over items,
    the paired difference from the first length, the time, and how many answers ran into the length."""
    import time

    import numpy as np
    import torch

    from cofi.analysis.intervals import interval
    from cofi.config.settings import PromptSettings
    from cofi.data.prompts import Prompter
    from cofi.evaluation.tasks import TASK_TYPES
    from cofi.jobs.evaluate import scoring_autocast
    from cofi.models.loading import load_model

    model, tokenizer = load_model(model_dir)
    model.eval()
    prompter = Prompter.of(tokenizer, PromptSettings(chat_template=True, system=""))  # configs/smollm2.yaml's prompts
    kind = TASK_TYPES["generation"]
    records = kind.read(Path(data_dir) / f"{suite}_test.jsonl")
    draws = np.random.default_rng(0).integers(0, len(records), (2000, len(records)))  # the same draws for every row
    rows, first = [], None
    for room in rooms:
        length = kind.max_new_tokens(prompter, records, "number", room)
        started = time.perf_counter()
        with torch.no_grad(), scoring_autocast(precision, model):
            scored = kind.score(model, prompter, records, "number", batch_size, None, room)
        items = np.asarray(scored["items"])
        first = items if first is None else first
        spent = [len(tokenizer.encode(p, add_special_tokens=False)) for p in scored["predictions"]]
        rows.append({"max_new_tokens": f"{length} ({'default' if room is None else 'set'})",
                     "score": round(scored["score"], 1),
                     "95 % interval": "[{:.1f}, {:.1f}]".format(*interval(100 * items[draws].mean(axis=1))),
                     "vs first": "{:+.1f} [{:+.1f}, {:+.1f}]".format(100 * (items - first).mean(),
                                                                     *interval(100 * (items - first)[draws].mean(axis=1))),
                     "right only here / only first": f"{int(((items == 1) & (first == 0)).sum())} / "
                                                     f"{int(((items == 0) & (first == 1)).sum())}",
                     "answers at the length": sum(n >= length - 1 for n in spent),
                     "seconds": round(time.perf_counter() - started, 1)})
    return pd.DataFrame(rows)


def forgetting_cost(config_file: str, run: str, task: str, everies: list[int], repeats: int, work_dir: str,
                    model_dir: str | None = None) -> pd.DataFrame:
    """What ``training.kl_every`` costs: ``run`` of the config trained on ``task`` by the finetune job at each
    measuring interval in turn (0: none), ``repeats`` times alternating; the training's seconds and each
    measurement's."""
    import dataclasses
    import statistics

    import torch

    from cofi.config.checks import check_config, load_config
    from cofi.config.experiment import Experiment
    from cofi.jobs.finetune import FinetuneJob, finetune

    torch.set_num_threads(1)
    experiment = Experiment(check_config(load_config(config_file)))
    configured = experiment.run(run)
    measured: dict[int, list[dict]] = {every: [] for every in everies}
    for _ in range(repeats):
        for every in everies:
            trained = dataclasses.replace(configured, train=dataclasses.replace(configured.train, kl_every=every))
            record = finetune(FinetuneJob(
                model=model_dir or experiment.base_model_dir, train_data=experiment.tasks[task].file("train"),
                run=trained, seed=0, prompt=experiment.prompt, compute=experiment.compute,
                forgetting=experiment.forgetting_files(task) if every else None, out=f"{work_dir}/kl{every}/model",
                curve=f"{work_dir}/kl{every}/loss.csv", log=lambda _: None))
            measured[every].append(record)
    rows = []
    for every, records in measured.items():
        watched = [r["forgetting"] for r in records if r.get("forgetting")]
        rows.append({"kl_every": every, "steps": configured.train.steps,
                     "training s (each repeat)": ", ".join(f"{r['seconds']:.2f}" for r in records),
                     "measurements": watched[0]["measurements"] if watched else 0,
                     "ms per measurement (median)": round(statistics.median(
                         1000 * w["seconds"] / w["measurements"] for w in watched), 1) if watched else None})
    return pd.DataFrame(rows)


def precision_table(model_dir: str, data_dir: str, task: str, steps: int, items: int, batch_size: int) -> pd.DataFrame:
    """float32 on the pinned kernels against bf16 autocast on the native ones, each with the template's system turn
    and an empty one: each setting in a fresh process (the kernels are chosen before torch starts)."""
    import json
    import os
    import subprocess
    import sys

    from cofi.models import kernels

    rows = []
    for precision in ("fp32", "bf16"):
        environment = {k: v for k, v in os.environ.items() if k not in ("COFI_JOB_SERVER", kernels.KERNELS_VARIABLE)}
        if precision == "bf16":
            environment[kernels.KERNELS_VARIABLE] = "native"
        for system in (None, ""):
            command = [sys.executable, "-m", "cofi.devtools", "bench-precision-one", "--model", model_dir,
                       "--data", data_dir, "--task", task, "--precision", precision, "--steps", str(steps),
                       "--items", str(items), "--batch-size", str(batch_size)] + ([] if system is None else ["--system", system])
            done = subprocess.run(command, capture_output=True, text=True, env=kernels.environment(environment))
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)
