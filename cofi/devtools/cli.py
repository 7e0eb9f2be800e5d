"""``python -m cofi.devtools <command>``: developer tools that are not workflow jobs: benchmarks, the GPU
check, the lm-evaluation-harness bridge, the generated docs references."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cofi.cli import log, main, threads
from cofi.jobs.interface import json_value as json_arg


def named_path(text: str) -> tuple[str, str]:
    """``NAME=PATH``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def model_load_args(p) -> None:
    """How a command loads a model: its directory, threads, and the options of a workflow job that loads one (the
    same names, defaults and help)."""
    import typing

    from cofi.jobs.interface import OnDevice, flag_of, job_fields

    p.add_argument("--model", required=True, help="local Hugging Face causal LM directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    for field, annotation in job_fields(OnDevice):
        if annotation is bool:
            p.add_argument(flag_of(field), action="store_true", help=field.metadata["job_help"])
        else:
            p.add_argument(flag_of(field), default=field.default, choices=typing.get_args(annotation) or None,
                           help=field.metadata["job_help"])

def cmd_bench_report(args) -> None:
    from cofi.devtools.bench import benchmark_report

    print(benchmark_report(args.benchmarks, args.logs), end="")


def cmd_bench_step(args) -> None:
    from cofi.devtools.bench import measure_training_step

    result = measure_training_step(args.model, args.train, args.template, args.method, args.params,
                                   args.steps, args.warmup, args.width, args.threads)
    print(json.dumps(result))  # one line on stdout: region_vs_full reads it


def cmd_bench_precision_one(args) -> None:
    from cofi.devtools.bench import measure_precision

    print(json.dumps(measure_precision(args.model, args.data, args.task, args.precision, args.system, args.steps,
                                       args.items, args.batch_size)))


def cmd_bench_precision(args) -> None:
    from cofi.devtools.bench import precision_table

    table = precision_table(args.model, args.data, args.task, args.steps, args.items, args.batch_size)
    print(table.to_markdown(index=False))


def cmd_bench_answer_room(args) -> None:
    from cofi.devtools.bench import answer_room

    rooms = [None if room == "default" else int(room) for room in args.lengths]
    print(answer_room(args.model, args.data, args.suite, rooms, args.batch_size).to_markdown(index=False))


def cmd_bench_kl(args) -> None:
    from cofi.devtools.bench import forgetting_cost

    print(forgetting_cost(args.config, args.run, args.task, args.every, args.repeats, args.work_dir,
                          args.model).to_markdown(index=False))


def cmd_bench_region(args) -> None:
    from cofi.devtools.bench import region_vs_full

    region = {"range": args.range, "modules": args.modules, "groups": args.groups}
    widths = [None] + args.widths
    table = region_vs_full(args.model, args.train, args.template, region, args.steps, args.warmup, widths,
                           args.repeats, args.threads)
    print(table.round(4).to_markdown(index=False))
    for width, rows in table.groupby("width", sort=False):
        full, reg = rows.set_index("method").loc["full"], rows.set_index("method").loc["region"]
        print(f"width {width}: region/full step time {reg.s_per_step / full.s_per_step:.2f}x, "
              f"peak RSS {reg.peak_rss_mb / full.peak_rss_mb:.2f}x, training memory {reg.training_mb / full.training_mb:.2f}x")


def cmd_bench_softmask(args) -> None:
    from cofi.devtools.bench import softmask_overhead

    region = {"range": args.range, "modules": args.modules, "groups": args.groups}
    table = softmask_overhead(args.model, args.train, args.template, region, args.importance, args.steps,
                              args.warmup, args.repeats, args.threads)
    print(table.round(4).to_markdown(index=False))
    for row in table[table["mask"] != "none"].itertuples():
        print(f"{row.mask} mask: {row.vs_no_mask:.3f}x the step time of the same region without mask "
              f"(its own work, {1000 * row.mask_op_s:.2f} ms a step, is {row.plain_plus_op_vs_no_mask:.3f}x)")
    if args.gap_steps:
        from cofi.devtools.bench import mask_trajectory_gap

        gaps = mask_trajectory_gap(args.model, args.train, args.template, region, args.importance,
                                   args.gap_steps, args.gap_lr, args.threads)
        print(f"\nweight change of each mask vs the unmasked run ({args.gap_steps} AdamW steps, lr {args.gap_lr}):")
        print(gaps.round(3).to_markdown(index=False))


def cmd_bench_sam(args) -> None:
    from cofi.devtools.bench import sam_overhead

    table = sam_overhead(args.model, args.train, args.template, args.rho, args.steps, args.warmup, args.repeats, args.threads)
    print(table.round(4).to_markdown(index=False))
    sam = table.set_index("optimizer").loc["SAM + AdamW"]
    print(f"a SAM step costs {sam.vs_adamw:.2f}x an AdamW step (Full SFT, batch 32, {args.threads} threads)")


def cmd_search_configs(args) -> None:
    """The config with the search as tree and grid, each over regions alone and over region x lr, and as snr (no
    training)."""
    from pathlib import Path

    import yaml

    from cofi.config.checks import load_config

    config = load_config(args.config)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for mode in ("tree", "grid"):
        for suffix, lrs in (("", None), ("_lr", args.lr)):
            search = {**config.get("search", {}), "mode": mode, "lr": lrs}
            (out / f"{mode}{suffix}.yaml").write_text(yaml.safe_dump({**config, "search": search}, sort_keys=False))
    search = {**config.get("search", {}), "mode": "snr", "lr": None, "eval_items": None}
    (out / "snr.yaml").write_text(yaml.safe_dump({**config, "search": search}, sort_keys=False))
    written = "snr, tree, grid, tree_lr and grid_lr"
    if args.eval_items:  # the tree again, its candidates scored on a seeded sample of the items
        search = {**config.get("search", {}), "mode": "tree", "lr": None, "eval_items": args.eval_items}
        (out / "tree_items.yaml").write_text(yaml.safe_dump({**config, "search": search}, sort_keys=False))
        written += " and tree_items"
    log(f"wrote {written} configs to {out}")


def cmd_scale(args) -> None:
    """Each method's Uni and Vers drop against the model size, from finished experiments at several sizes."""
    from cofi.analysis.scale import write_scale

    frame = write_scale(args.experiment, args.out_dir, args.methods)
    print(frame.round(2).to_markdown(index=False))


def cmd_base_seed_configs(args) -> None:
    """The config once per base seed (cofi.analysis.base_seeds.seed_configs), as base<seed>.yaml."""
    from pathlib import Path

    import yaml

    from cofi.analysis.base_seeds import seed_configs
    from cofi.config.checks import load_config

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for seed, config in seed_configs(load_config(args.config), args.seeds).items():
        (out / f"base{seed}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        log(f"base seed {seed}: {out / f'base{seed}.yaml'} (results/{config['experiment']})")


def cmd_base_seeds(args) -> None:
    """Every cell's spread between base seeds against the fine-tuning seeds', each claim's verdict per base seed."""
    from cofi.analysis.base_seeds import write_base_seeds
    from cofi.config.checks import checked_experiment, load_config

    experiments = {}
    for path in args.config:
        config = load_config(path)
        experiment = checked_experiment(config, check_files=False)
        experiments[config["embedded"]["base"]["seed"]] = experiment.layout.root
    spread, verdicts = write_base_seeds(experiments, args.out_dir)
    print(verdicts.to_markdown(index=False))


def cmd_bench_search(args) -> None:
    from cofi.devtools.bench import search_efficiency
    from cofi.config.checks import checked_experiment, load_config

    folders, seeds, stems, runs = {}, set(), {}, None
    for name, path in args.config:
        experiment = checked_experiment(load_config(path), check_files=False)
        folders[name] = experiment.layout.search_dir(experiment.search.name, "")
        seeds.add(experiment.search.seed)
        stems[name] = experiment.search.scores_split
        runs = f"{experiment.layout.root}/runs"
    if len(seeds) != 1:
        raise SystemExit(f"bench-search: the searches ran with different seeds {sorted(seeds)}: their times do not compare")
    table = search_efficiency(folders, args.benchmarks, seeds.pop(), stems, runs)
    print(table.round(2).to_markdown(index=False))


def cmd_docs(args) -> None:
    """The generated reference pages (configuration from the schema, methods from the registry)."""
    from pathlib import Path

    from cofi.devtools.reference import write_references

    for path in write_references(Path(args.out_dir)):
        log(f"wrote {path}")


def cmd_lm_eval(args) -> None:
    """lm-eval harness tasks on a checkpoint, written in the score format of ``evaluate``."""
    from importlib.metadata import version

    from cofi.evaluation import lm_eval as lm_eval_bridge
    from cofi.io import write_json
    from cofi.jobs.evaluate import score_file
    from cofi.models.loading import check_model_dir, resolve_device

    threads(args.threads)
    mapping = lm_eval_bridge.parse_mapping(args.tasks)
    check_model_dir(args.model, args.trust_remote_code)  # bad input stops before the harness loads anything
    device = str(resolve_device(args.device))
    started = time.perf_counter()
    results = lm_eval_bridge.run(args.model, mapping, args.include_path, args.dtype, device, args.batch_size,
                                 args.limit, args.trust_remote_code, args.chat_template)
    spec, vers = lm_eval_bridge.scores_from_results(results, mapping)
    items = {task: result.get("sample_len") for task, result in results.items()}
    write_json(args.out, score_file(args.labels, args.model, spec, vers, items, evaluator=f"lm-eval {version('lm_eval')}",
                                    harness_tasks=mapping, harness_results=results))
    log(f"lm-eval in {time.perf_counter() - started:.1f}s: Spec {spec}; Know {vers['know']:.1f}, "
        f"Reason {vers['reason']:.1f}, Instruct {vers['instruct']:.1f}; wrote {args.out}")


def cmd_lm_eval_task(args) -> None:
    from cofi.evaluation.lm_eval import write_local_task

    path = write_local_task(args.out_dir, args.name, args.data, args.type, args.template, args.max_gen_toks,
                            args.chat_template, args.metric)
    log(f"wrote {path}; run it with: python -m cofi.devtools lm-eval --include-path {args.out_dir} ...")


def cmd_gpu_check(args) -> None:
    from cofi.devtools.gpu_check import run
    from cofi.io import write_json

    result = run(args.work_dir, args.steps, args.warmup, args.batch_size, args.seq_len, args.gradient_checkpointing,
                 args.peak_tflops, args.eval_items, args.layers)
    write_json(args.out, result)
    mfu = f"{100 * result['mfu']:.1f} %" if result["mfu"] is not None else "unknown peak (give --peak-tflops)"
    log(f"{result['gpu']}: {result['parameters'] / 1e9:.2f} B parameters, batch {result['batch_size']} x "
        f"{result['seq_len']} tokens: {result['s_per_step']:.3f} s/step, {result['tokens_per_s']:,.0f} tokens/s, "
        f"{result['model_tflops_per_s']:.0f} model TFLOP/s, MFU {mfu}; peak memory "
        f"{result['peak_gpu_memory_gb']:.1f} GiB; evaluation of {result['eval_items']} items {result['evaluate_job_s']:.1f} s")


def cmd_gpu_validate(args) -> None:
    from cofi.devtools.gpu_validate import summary, validate
    from cofi.io import write_json

    result = validate(args.work_dir, smoke=args.smoke, budget_s=args.budget_s, log=log)
    write_json(args.out, result)
    Path(args.summary).write_text(summary(result))
    failed = [name for name, step in result["steps"].items() if step["status"] != "ok"]
    log(f"wrote {args.out} and {args.summary} in {result['total_s']:.0f} s; "
        + (f"not ok: {', '.join(failed)}" if failed else "every step ok"))
    if failed:
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    from cofi.config.settings import PromptSettings
    from cofi.evaluation.tasks import TASK_TYPES  # light: no torch
    from cofi.search.regions import DEFAULT_GROUPS

    parser = argparse.ArgumentParser(prog="cofi.devtools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench-step", help="(internal) time and memory of training steps, one method, JSON out")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--template", required=True, help="prompt format string")
    p.add_argument("--method", required=True, help="registered method")
    p.add_argument("--params", type=json_arg, default="{}", help="JSON of method params")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--width", type=int, default=None, help="rebuild the model at this hidden size (random weights)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=cmd_bench_step)

    for name, helptext in (("bench-precision", "a real model's training step and scoring in fp32 (pinned kernels) and "
                                                  "bf16 (native), with and without the template's system turn"),
                           ("bench-precision-one", "(internal) one setting of bench-precision, JSON out")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--model", default="results/smollm2/base_model", help="a chat model directory")
        p.add_argument("--data", default="results/smollm2/data", help="its chat suites (embedded.suites: chat)")
        p.add_argument("--task", default="facts", help="the task whose training data the steps take")
        p.add_argument("--steps", type=int, default=5, help="timed training steps (after one untimed)")
        p.add_argument("--items", type=int, default=100, help="items of each versatility test suite scored")
        p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
        if name == "bench-precision-one":
            p.add_argument("--precision", required=True, choices=["fp32", "bf16"])
            p.add_argument("--system", default=None, help="the system turn (default: the template's own)")
        p.set_defaults(func=cmd_bench_precision_one if name == "bench-precision-one" else cmd_bench_precision)

    p = sub.add_parser("bench-kl", help="what training.kl_every costs: one run trained at several intervals, alternating")
    p.add_argument("--config", default="config.yaml", help="the experiment's config")
    p.add_argument("--run", default="full", help="the configured run to train")
    p.add_argument("--task", default="bio", help="the task it trains on")
    p.add_argument("--every", type=int, nargs="+", default=[0, 10, 1], help="measuring intervals (0: none)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over the intervals")
    p.add_argument("--work-dir", default="results/bench-kl", help="where the runs are written")
    p.add_argument("--model", default=None, help="the base model directory (default: the experiment's)")
    p.set_defaults(func=cmd_bench_kl)

    p = sub.add_parser("bench-answer-room", help="a chat model's number suite at several answer lengths, paired")
    p.add_argument("--model", default="results/smollm2/base_model", help="a chat model directory")
    p.add_argument("--data", default="results/smollm2/data", help="its chat suites (embedded.suites: chat)")
    p.add_argument("--suite", default="reason", help="a generation suite scored by the number metric")
    p.add_argument("--lengths", nargs="+", default=["51", "default"],
                   help="answer lengths in tokens, or default (the suite's own); the first is what the rest are paired "
                        "with (51: the reasoning suite's longest reference, 3 tokens, plus 48)")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.set_defaults(func=cmd_bench_answer_room)

    p = sub.add_parser("bench-region", help="step time and memory of a region vs Full SFT, side by side")
    p.add_argument("--model", required=True, help="model directory (e.g. results/default/base_model)")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--template", default=PromptSettings.template, help="prompt format string")
    p.add_argument("--range", nargs=2, default=["0.25", "0.5"], help="layer range a b (fractions)")
    p.add_argument("--modules", nargs="+", default=["ffn"], help="module groups")
    p.add_argument("--groups", type=json_arg, default=json.dumps(DEFAULT_GROUPS), help="JSON module groups")
    p.add_argument("--widths", type=int, nargs="*", default=[512], help="also measure at these hidden sizes")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats (medians reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=cmd_bench_region)

    p = sub.add_parser("bench-softmask", help="soft-mask step overhead vs the same region without mask")
    p.add_argument("--model", required=True, help="model directory (e.g. results/default/base_model)")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--importance", required=True, help="importance .safetensors for this model")
    p.add_argument("--template", default=PromptSettings.template, help="prompt format string")
    p.add_argument("--range", nargs=2, default=["0.25", "0.75"], help="layer range a b (fractions)")
    p.add_argument("--modules", nargs="+", default=list(DEFAULT_GROUPS), help="module groups")
    p.add_argument("--groups", type=json_arg, default=json.dumps(DEFAULT_GROUPS), help="JSON module groups")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement (short: variants alternate often)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=30, help="alternating repeats, order rotating (median step reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--gap-steps", type=int, default=200, help="steps of the trajectory comparison (0: skip it)")
    p.add_argument("--gap-lr", type=float, default=3e-4, help="learning rate of the trajectory comparison")
    p.set_defaults(func=cmd_bench_softmask)

    p = sub.add_parser("lm-eval", help="harness tasks on a checkpoint, as a cofi score file")
    model_load_args(p)
    p.add_argument("--tasks", required=True,
                   help='JSON {"spec": {task: [harness task, ...]}, "vers": {"know": [...], "reason": [...], "instruct": [...]}}; '
                        'an entry may be {"task": name, "metric": "acc_norm,none"}')
    p.add_argument("--include-path", help="directory of extra task YAMLs (e.g. from lm-eval-task)")
    p.add_argument("--labels", type=json_arg, default="{}", help="JSON labels stored with the scores (method, task, seed)")
    p.add_argument("--batch-size", type=int, default=32, help="harness batch size")
    p.add_argument("--limit", type=int, default=None, help="at most this many items per task")
    p.add_argument("--chat-template", action="store_true", help="prompts through the model's chat template "
                   "(prompt.chat_template: true)")
    p.add_argument("--out", required=True, help="scores JSON (the format of evaluate)")
    p.set_defaults(func=cmd_lm_eval)

    p = sub.add_parser("lm-eval-task", help="write an lm-eval task YAML over one of cofi's JSONL suites")
    p.add_argument("--name", required=True, help="task name")
    p.add_argument("--data", required=True, help="JSONL suite")
    p.add_argument("--type", required=True, choices=list(TASK_TYPES), help="suite type")
    p.add_argument("--metric", help="cofi metric of the type (default: its first)")
    p.add_argument("--template", default=PromptSettings.template, help="cofi prompt template ({instruction}, {input})")
    p.add_argument("--chat-template", action="store_true", help="the user turn only: lm-eval --chat-template applies "
                   "the model's template")
    p.add_argument("--max-gen-toks", type=int, default=64, help="generation length (generation suites)")
    p.add_argument("--out-dir", required=True, help="directory for <name>.yaml")
    p.set_defaults(func=cmd_lm_eval_task)

    p = sub.add_parser("docs", help="write the configuration and method references (docs/reference/) from the "
                       "schema and the method registry")
    p.add_argument("--out-dir", default="docs/reference", help="where the generated pages go")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("gpu-check", help="a random 1B-class Llama fine-tuned on one GPU by the finetune command: tokens/s, MFU")
    p.add_argument("--work-dir", required=True, help="scratch directory (model, data, outputs; several GB)")
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps")
    p.add_argument("--warmup", type=int, default=10, help="steps left out of the timing")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default 22: 1.1 B parameters, TinyLlama's shape)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: known GPUs)")
    p.add_argument("--eval-items", type=int, default=256, help="items per evaluation suite")
    p.set_defaults(func=cmd_gpu_check)

    p = sub.add_parser("gpu-validate", help="every GPU claim in one script (minutes on one GPU): the finetune job's "
                       "MFU, FSDP2, DCP, the methods' step times, memory against the plan; --smoke on the CPU")
    p.add_argument("--work-dir", required=True, help="scratch directory (models, data, outputs; several GB)")
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--summary", required=True, help="Markdown summary")
    p.add_argument("--smoke", action="store_true", help="the same steps on the CPU with tiny shapes")
    p.add_argument("--budget-s", type=float, default=None, help="seconds after which the steps left are skipped "
                   "(default: 420 on a GPU)")
    p.set_defaults(func=cmd_gpu_validate)

    p = sub.add_parser("bench-sam", help="SAM step time vs plain AdamW (Full SFT), side by side")
    p.add_argument("--model", required=True, help="model directory (e.g. results/default/base_model)")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--template", default=PromptSettings.template, help="prompt format string")
    p.add_argument("--rho", type=float, default=0.05, help="SAM radius")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=20, help="alternating repeats (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=cmd_bench_sam)

    p = sub.add_parser("bench-search", help="searches side by side: trainings, their time, the pick and its Uni gap")
    p.add_argument("--config", type=named_path, action="append", required=True,
                   help="NAME=config of a finished search, once per search, the widest (its best the reference) last")
    p.add_argument("--benchmarks", help="results/<exp>/benchmarks (the training time of each search's runs)")
    p.set_defaults(func=cmd_bench_search)

    p = sub.add_parser("scale", help="the scale trend: each method's Uni and Vers drop against the model size")
    p.add_argument("--experiment", action="append", required=True, help="results/<experiment>, once per model size")
    p.add_argument("--methods", nargs="+", help="table rows to draw (default: all but the base model)")
    p.add_argument("--out-dir", required=True, help="directory for scale.csv and scale.png/.pdf")
    p.set_defaults(func=cmd_scale)

    p = sub.add_parser("base-seed-configs", help="a config once per base model seed, each an experiment of its own")
    p.add_argument("--config", required=True, help="the config (e.g. config.yaml)")
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="embedded.base.seed values")
    p.add_argument("--out-dir", required=True, help="where base<seed>.yaml go")
    p.set_defaults(func=cmd_base_seed_configs)

    p = sub.add_parser("base-seeds", help="how the tables and claims move with the base model's seed")
    p.add_argument("--config", action="append", required=True, help="a finished base-seed config, once per seed")
    p.add_argument("--out-dir", required=True, help="directory for spread.csv/.md and verdicts.csv/.md")
    p.set_defaults(func=cmd_base_seeds)

    p = sub.add_parser("search-configs", help="a config's search as tree and grid, over regions and region x lr")
    p.add_argument("--config", required=True, help="the config (e.g. config.yaml)")
    p.add_argument("--lr", type=float, nargs="+", required=True, help="search.lr of the _lr configs")
    p.add_argument("--out-dir", required=True, help="where snr.yaml, tree.yaml, grid.yaml, tree_lr.yaml, grid_lr.yaml go")
    p.add_argument("--eval-items", type=int, help="also tree_items.yaml: the tree on a sample of this many items")
    p.set_defaults(func=cmd_search_configs)

    p = sub.add_parser("bench-report", help="per-rule times from Snakemake benchmark files")
    p.add_argument("benchmarks", help="directory of benchmark TSV files (searched recursively)")
    p.add_argument("--logs", help="the jobs' logs, at the benchmarks' paths (default: logs/ beside the benchmarks)")
    p.set_defaults(func=cmd_bench_report)
    return parser


def run() -> int:
    """``python -m cofi.devtools COMMAND``."""
    return main(parser=build_parser())
