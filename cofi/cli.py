"""``python -m cofi <command>``: the steps the workflow's rules call, each with explicit inputs/outputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Nothing at run time may reach a hub: models and data are local paths only.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def json_arg(text: str):
    """argparse type of the flags that carry JSON: bad JSON is a usage error naming the flag."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg} at column {error.colno}): {text!r}") from None


json_arg.__name__ = "JSON"  # argparse names the type in its message


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def cmd_check_config(args) -> None:
    from cofi.config import check_config, load_config

    config = check_config(load_config(args.config))
    log(f"{args.config}: OK (experiment {config['experiment']!r}, tasks {', '.join(config['tasks'])})")


def cmd_make_data(args) -> None:
    from cofi.data import write_jsonl
    from cofi.world import WorldSpec, build_world

    world = build_world(WorldSpec(**args.world))
    for stem, records in world.items():
        write_jsonl(Path(args.out_dir) / f"{stem}.jsonl", records)
        log(f"wrote {len(records):>6} records to {Path(args.out_dir) / stem}.jsonl")


def cmd_build_base(args) -> None:
    """Tokenizer + small Llama, "aligned" on the versatility mixture, saved as a HF directory."""
    from cofi.data import load_records
    from cofi.modeling import build_llama, build_word_tokenizer, save_model
    from cofi.train import TrainConfig, tokenize_dataset, train
    from cofi.world import WorldSpec, vocabulary

    _threads(args.threads)
    base = args.base
    tokenizer = build_word_tokenizer(vocabulary(WorldSpec(**args.world)))
    arch = {k: base[k] for k in ("layers", "hidden", "intermediate", "heads")} | {"max_len": args.max_len}
    model = build_llama(len(tokenizer), arch, seed=base["seed"])
    records = load_records(args.train)
    examples = tokenize_dataset(records, tokenizer, args.template, True, args.max_len)
    cfg = TrainConfig.from_dict({**base["train"], "seed": base["seed"], "max_len": args.max_len})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = train(model, examples, cfg, tokenizer.pad_token_id, out / "loss.csv", log=log)
    save_model(model, tokenizer, out)
    log(f"saved the base model to {out} ({summary['seconds']:.0f}s of training)")


def cmd_finetune(args) -> None:
    """One run: the method's setup (which parameters train, hooks, penalties, data mixture), then
    the shared training loop; a method that does not train (Wise-FT) builds its weights instead.
    Under ``torchrun`` every process trains its share of each batch and the first one writes."""
    import torch

    from cofi import checkpoint, distributed
    from cofi.data import load_records
    from cofi.methods import METHODS, Inputs
    from cofi.modeling import load_model, resolve_device, save_model
    from cofi.train import TrainConfig, tokenize_dataset, train

    _threads(args.threads)
    params = args.params
    method = METHODS[args.method]
    device = resolve_device(args.device)
    distributed.init(device)
    model, tokenizer = load_model(args.model, args.trust_remote_code, args.dtype, str(device))
    inputs = Inputs(
        seed=args.seed,
        tokenize=lambda records: tokenize_dataset(records, tokenizer, args.template, args.mask_prompt, args.max_len),
        load_model=lambda path: load_model(path, args.trust_remote_code, args.dtype, str(device)),
        log=log if distributed.is_main() else lambda _: None, importance=args.importance,
        source_model=args.source_model, replay_data=args.replay_data,
    )
    out = Path(args.out)
    record = {"method": args.method, "params": params, "seed": args.seed}
    if not method.trains:
        started = time.perf_counter()
        model = method.build(model, params, inputs)
        if distributed.is_main():
            Path(args.curve).write_text("step,loss,penalty,sam_loss,lr,tokens,seconds\n")  # no training, no curve
        record |= {"trainable": [], "steps": 0, "seconds": time.perf_counter() - started}
    else:
        torch.manual_seed(args.seed)  # adapters and other new weights start from the run's seed
        setup = method.setup(model, params, inputs)
        inputs.log(f"method {args.method}: {len(setup.trainable)} parameter tensors train on {device}")
        examples = inputs.tokenize(load_records(args.train))
        cfg = TrainConfig.from_dict({**params, "seed": args.seed, "max_len": args.max_len, "mask_prompt": args.mask_prompt,
                                     "precision": args.precision, "gradient_checkpointing": args.gradient_checkpointing,
                                     "checkpoint_every": args.checkpoint_every})
        if cfg.sam_rho:
            inputs.log(f"SAM with rho {cfg.sam_rho}: two forward/backward passes per step")
        batches = setup.batches(examples, cfg.batch_size, tokenizer.pad_token_id, cfg.seed) if setup.batches else None
        # A checkpoint resumes only into the same run: same base model, data, method and params.
        settings = {"model": str(args.model), "train_data": str(args.train), "method": args.method, "params": params,
                    "importance": args.importance, "source_model": args.source_model, "replay_data": args.replay_data}
        summary = train(setup.model, examples, cfg, tokenizer.pad_token_id, Path(args.curve), log=inputs.log,
                        hooks=setup.hooks, penalties=setup.penalties, batches=batches,
                        checkpoint_dir=args.checkpoint_dir, settings=settings)
        if distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            model = setup.finish(setup.model, out)
        record |= {"trainable": setup.trainable, **summary, "processes": distributed.world_size(), "device": str(device),
                   "precision": cfg.precision}
    if distributed.is_main():
        save_model(model, tokenizer, out)
        (out / "cofi_run.json").write_text(json.dumps(record, indent=2))
        if args.checkpoint_dir:
            checkpoint.remove(args.checkpoint_dir)  # the outputs are complete: the checkpoints have served
        log(f"saved {args.method} model to {out}")
    distributed.barrier()
    distributed.finish()


def cmd_methods(args) -> None:
    """The registered methods, their own config keys and defaults, and the options every training method takes."""
    from cofi.methods import METHODS

    for name, method in METHODS.items():
        print(f"{name}: {method.description}" + ("" if method.trains else " (no training)"))
        for key, spec in method.keys.items():
            sweep = " (a list gives a run per value)" if key in method.sweep else ""
            print(f"    {key} = {json.dumps(spec.get('default'))}: {spec.get('description', '')}{sweep}")
    print("\nEvery training method also takes the training keys (lr, steps, batch_size, grad_accum, warmup_ratio,\n"
          "weight_decay, max_grad_norm, log_every), sam: {rho: R} (sharpness-aware minimisation) and\n"
          "equal_compute: true (twice the steps: the compute of a SAM run).")


def cmd_importance(args) -> None:
    from cofi.data import load_records
    from cofi.importance import accumulate_importance, plot_importance, prompt_batches, save_importance
    from cofi.modeling import load_model

    _threads(args.threads)
    options = args.options
    model, tokenizer = load_model(args.model, args.trust_remote_code, args.dtype, args.device)
    records = load_records(args.data)
    batches = prompt_batches(records, tokenizer, args.template, options["batch_size"], options["batches"],
                             args.max_len, options["seed"])
    started = time.perf_counter()
    raw = accumulate_importance(model, batches, options["dropout"], options["signed"], options["seed"])
    options |= {"data": args.data, "model": args.model, "template": args.template, "max_len": args.max_len}
    importance = save_importance(args.out, raw, model.config, options)
    plot_importance(importance, args.plot, title=f"unit importance from {Path(args.data).name}")
    log(f"importance from {sum(len(b['input_ids']) for b in batches)} inputs in {time.perf_counter() - started:.1f}s; "
        + ", ".join(f"{k} mean {v.mean():.3f}" for k, v in importance.items()))
    log(f"wrote {args.out} and {args.plot}")


def cmd_evaluate(args) -> None:
    from cofi.data import read_jsonl
    from cofi.evaluate import Suite, score_suite
    from cofi.metrics import aggregate
    from cofi.modeling import load_model

    _threads(args.threads)
    suites = args.suites
    model, tokenizer = load_model(args.model, args.trust_remote_code, args.dtype, args.device)
    model.eval()
    results, items, predictions = {"spec": {}, "vers": {}}, {}, {}
    for group in ("spec", "vers"):
        for name, suite in suites[group].items():
            suite = Suite(name=name, **suite)
            records = read_jsonl(suite.path, multiple_choice=suite.type == "multiple_choice")[: args.max_items]
            started = time.perf_counter()
            scored = score_suite(model, tokenizer, records, suite, args.template, args.batch_size)
            results[group][name], items[name], predictions[name] = scored["score"], len(records), scored["predictions"]
            log(f"{group} {name}: {scored['score']:.1f} on {len(records)} items ({time.perf_counter() - started:.1f}s)")
    labels = args.labels
    scores = {"labels": labels, "model": args.model, **aggregate(results["spec"], results["vers"]), "items": items}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(scores, indent=2) + "\n")
    if args.predictions:
        Path(args.predictions).write_text(json.dumps(predictions, indent=1) + "\n")
    log(f"Vers {scores['vers']:.1f}; Uni {', '.join(f'{t} {u:.1f}' for t, u in scores['uni'].items())}")


def cmd_search_step(args) -> None:
    from cofi.search_run import policy_from_dict, search_step

    payload = search_step(args.task, args.depth, policy_from_dict(args.policy), args.n_layers, args.reference,
                          args.split, args.previous, args.candidates, args.out)
    for node in payload["nodes"]:
        log(f"depth {args.depth} {node['id']}: Spec {node['spec']:.1f} Vers {node['vers']:.1f} Uni {node['uni']:.1f} - {node['status']}: {node['reason']}")
    log(f"next depth: {', '.join(c['id'] for c in payload['expand']) or 'nothing (search ends)'}")


def cmd_search_report(args) -> None:
    from cofi.search_run import search_report

    result = search_report(args.task, args.depth_files, args.n_layers, args.out_dir)
    log(f"{args.task}: selected {result['label']} ({result['selected']}) after training {len(result['trained'])} candidates")


def cmd_table(args) -> None:
    from cofi.tables import write_tables

    expect = args.expect
    tidy = write_tables(args.files, args.out_dir, args.reference, args.groups, args.digits, args.std,
                        args.bold, expect)
    log(f"wrote {len(tidy)} rows (methods × tasks) to {args.out_dir}: main.csv/.md/.tex, normalised.md/.tex, seeds.csv")


def cmd_plots(args) -> None:
    from cofi.plots import write_plots

    written = write_plots(args.table, args.out_dir, args.collect)
    log(f"wrote {len(written)} figures to {args.out_dir}")


def cmd_landscape(args) -> None:
    """Loss landscape of one model on a fixed speciality and a fixed versatility batch."""
    from cofi.data import read_jsonl
    from cofi.landscape import batch_loss, fixed_batches, landscape, plot_landscape
    from cofi.modeling import load_model

    _threads(args.threads)
    options = args.options
    model, tokenizer = load_model(args.model, args.trust_remote_code, args.dtype, args.device)
    model.eval()
    suites = args.vers_suites
    vers_records = [read_jsonl(s["path"], multiple_choice=s["type"] == "multiple_choice") for s in suites.values()]
    batches = fixed_batches(read_jsonl(args.task_data), vers_records, tokenizer, args.template, args.mask_prompt,
                            args.max_len, options["batch_size"], options["data_seed"], tokenizer.pad_token_id)
    started = time.perf_counter()
    result = landscape(model, {name: batch_loss(batch) for name, batch in batches.items()}, options["span"],
                       options["points_1d"], options["points_2d"], options["radius"], options["direction_seed"])
    result = {**args.labels, "model": args.model, "options": options, **result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result) + "\n")
    plot_landscape(result, f"{result['run']} on {result['task']} (seed {result['seed']})", args.plot)
    for key, figures in result["sharpness"].items():
        log(f"{key} batch: loss {result['centre'][key]:.4f} at the centre; "
            + ", ".join(f"{name} {value:.4g}" for name, value in figures.items()))
    log(f"{len(result['alphas_1d']) + len(result['alphas_2d']) ** 2} grid points in {time.perf_counter() - started:.1f}s")


def cmd_sharpness(args) -> None:
    """Sharpness figures of every landscape, the Vers drop of each model, and their rank correlations."""
    from cofi.sharpness import write_sharpness

    table, correlations = write_sharpness(args.files, args.out_dir, args.plot_dir)
    log(f"sharpness of {len(table)} models; Spearman with the Vers drop:\n{correlations.round(3).to_string(index=False)}")


def cmd_bench_report(args) -> None:
    from cofi.bench import benchmark_report

    print(benchmark_report(args.benchmarks), end="")


def cmd_bench_step(args) -> None:
    from cofi.bench import measure_training_step

    result = measure_training_step(args.model, args.train, args.template, args.method, args.params,
                                   args.steps, args.warmup, args.width, args.threads)
    print(json.dumps(result))


def cmd_bench_region(args) -> None:
    from cofi.bench import region_vs_full

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
    from cofi.bench import softmask_overhead

    region = {"range": args.range, "modules": args.modules, "groups": args.groups}
    table = softmask_overhead(args.model, args.train, args.template, region, args.importance, args.steps,
                              args.warmup, args.repeats, args.threads)
    print(table.round(4).to_markdown(index=False))
    for row in table[table["mask"] != "none"].itertuples():
        print(f"{row.mask} mask: {row.vs_no_mask:.3f}x the step time of the same region without mask "
              f"(its own work, {1000 * row.mask_op_s:.2f} ms a step, is {row.plain_plus_op_vs_no_mask:.3f}x)")
    if args.gap_steps:
        from cofi.bench import mask_trajectory_gap

        gaps = mask_trajectory_gap(args.model, args.train, args.template, region, args.importance,
                                   args.gap_steps, args.gap_lr, args.threads)
        print(f"\nweight change of each mask vs the unmasked run ({args.gap_steps} AdamW steps, lr {args.gap_lr}):")
        print(gaps.round(3).to_markdown(index=False))


def cmd_bench_sam(args) -> None:
    from cofi.bench import sam_overhead

    table = sam_overhead(args.model, args.train, args.template, args.rho, args.steps, args.warmup, args.repeats, args.threads)
    print(table.round(4).to_markdown(index=False))
    sam = table.set_index("optimizer").loc["SAM + AdamW"]
    print(f"a SAM step costs {sam.vs_adamw:.2f}x an AdamW step (Full SFT, batch 32, {args.threads} threads)")


def cmd_bench_search(args) -> None:
    from cofi.bench import search_efficiency

    table = search_efficiency(args.tree, args.grid)
    print(table.round(2).to_markdown(index=False))


def cmd_lm_eval(args) -> None:
    """lm-eval harness tasks on a checkpoint, written in the score format of ``evaluate``."""
    from importlib.metadata import version

    from cofi import lm_eval_bridge
    from cofi.metrics import aggregate
    from cofi.modeling import check_model_dir, resolve_device

    _threads(args.threads)
    mapping = lm_eval_bridge.parse_mapping(args.tasks)
    check_model_dir(args.model, args.trust_remote_code)  # bad input stops before the harness loads anything
    device = str(resolve_device(args.device))
    started = time.perf_counter()
    results = lm_eval_bridge.run(args.model, mapping, args.include_path, args.dtype, device, args.batch_size,
                                 args.limit, args.trust_remote_code)
    spec, vers = lm_eval_bridge.scores_from_results(results, mapping)
    scores = {"labels": args.labels, "model": args.model, **aggregate(spec, vers),
              "items": {task: result.get("sample_len") for task, result in results.items()},
              "evaluator": f"lm-eval {version('lm_eval')}", "harness_tasks": mapping, "harness_results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(scores, indent=2, default=str) + "\n")
    log(f"lm-eval in {time.perf_counter() - started:.1f}s: Spec {spec}; Know {vers['know']:.1f}, "
        f"Reason {vers['reason']:.1f}, Instruct {vers['instruct']:.1f}; wrote {args.out}")


def cmd_lm_eval_task(args) -> None:
    from cofi.lm_eval_bridge import write_local_task

    path = write_local_task(args.out_dir, args.name, args.data, args.type, args.template, args.max_gen_toks)
    log(f"wrote {path}; run it with: python -m cofi lm-eval --include-path {args.out_dir} ...")


def cmd_gpu_check(args) -> None:
    from cofi.gpu_check import run

    result = run(args.work_dir, args.steps, args.warmup, args.batch_size, args.seq_len, args.gradient_checkpointing,
                 args.peak_tflops, args.eval_items, args.layers)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    mfu = f"{100 * result['mfu']:.1f} %" if result["mfu"] is not None else "unknown peak (give --peak-tflops)"
    log(f"{result['gpu']}: {result['parameters'] / 1e9:.2f} B parameters, batch {result['batch_size']} x "
        f"{result['seq_len']} tokens: {result['s_per_step']:.3f} s/step, {result['tokens_per_s']:,.0f} tokens/s, "
        f"{result['model_tflops_per_s']:.0f} model TFLOP/s, MFU {mfu}; peak memory "
        f"{result['peak_gpu_memory_gb']:.1f} GiB; evaluation of {result['eval_items']} items {result['evaluate_job_s']:.1f} s")


def _model_load_args(p) -> None:
    """How a command loads a model: directory, remote code, dtype, device, threads."""
    p.add_argument("--model", required=True, help="local Hugging Face causal LM directory")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weights dtype")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads)")
    p.add_argument("--device", default="auto", help="auto (the GPU if one is visible, else the CPU), cpu, cuda or cuda:N")


def _model_args(p) -> None:
    _model_load_args(p)
    p.add_argument("--template", required=True, help="prompt format string with {instruction} and {input}")


def build_parser() -> argparse.ArgumentParser:
    from cofi.methods import METHODS
    from cofi.regions import DEFAULT_GROUPS

    parser = argparse.ArgumentParser(prog="cofi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file (schema, meaning, data files, model)")
    p.add_argument("config", help="YAML config file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("make-data", help="write the embedded synthetic world as JSONL files")
    p.add_argument("--world", type=json_arg, required=True, help="JSON of embedded.world settings")
    p.add_argument("--out-dir", required=True, help="directory for <split>.jsonl files")
    p.set_defaults(func=cmd_make_data)

    p = sub.add_parser("build-base", help="build and align the embedded base model")
    p.add_argument("--world", type=json_arg, required=True, help="JSON of embedded.world settings (for the vocabulary)")
    p.add_argument("--base", type=json_arg, required=True, help="JSON of embedded.base settings (architecture, training)")
    p.add_argument("--train", required=True, help="versatility training JSONL")
    p.add_argument("--template", required=True, help="prompt format string")
    p.add_argument("--max-len", type=int, required=True, help="tokens per example")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_build_base)

    p = sub.add_parser("finetune", help="fine-tune a model on a speciality task with one method")
    _model_args(p)
    p.add_argument("--method", required=True, choices=sorted(METHODS), metavar="METHOD",
                   help="; ".join(f"{name}: {m.description}" for name, m in METHODS.items()))
    p.add_argument("--params", type=json_arg, required=True, help="JSON of the method's hyperparameters")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--seed", type=int, default=0, help="seed for data order and initialisation")
    p.add_argument("--max-len", type=int, required=True, help="tokens per example")
    p.add_argument("--mask-prompt", action=argparse.BooleanOptionalAction, default=True, help="loss on responses only")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--curve", required=True, help="loss curve CSV")
    p.add_argument("--importance", help="unit importance .safetensors (soft-mask methods)")
    p.add_argument("--source-model", help="fine-tuned model directory to interpolate toward (wiseft)")
    p.add_argument("--replay-data", help="versatility training JSONL to mix in (replay)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="autocast precision; bf16/fp16 keep float32 copies of the trained weights")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward (less memory)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="resumable checkpoint every N steps (0: none)")
    p.add_argument("--checkpoint-dir", help="where checkpoints go and are resumed from (removed when the run is done)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("methods", help="list the registered methods and their config keys")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("importance", help="estimate unit importance (heads, FFN units) for the soft masks")
    _model_args(p)
    p.add_argument("--data", required=True, help="JSONL whose inputs (instruction + input) are used, unlabeled")
    p.add_argument("--options", type=json_arg, required=True, help="JSON: dropout, batches, batch_size, signed, seed")
    p.add_argument("--max-len", type=int, required=True, help="tokens per input")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--plot", required=True, help="output heatmap (.png)")
    p.set_defaults(func=cmd_importance)

    p = sub.add_parser("evaluate", help="score a model on speciality and versatility suites")
    _model_args(p)
    p.add_argument("--suites", type=json_arg, required=True, help='JSON {"spec": {name: suite}, "vers": {name: suite}}')
    p.add_argument("--labels", type=json_arg, required=True, help="JSON labels stored with the scores (method, task, seed)")
    p.add_argument("--batch-size", type=int, default=128, help="evaluation batch size")
    p.add_argument("--max-items", type=int, default=None, help="score at most this many items per suite")
    p.add_argument("--out", required=True, help="scores JSON")
    p.add_argument("--predictions", help="optional JSON of per-item predictions")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("table", help="build the result tables from score files")
    p.add_argument("files", nargs="+", help="score JSON files (test, and validation for sweeps), and search result.json "
                   "files whose picks become 'cofitune_coarse' rows")
    p.add_argument("--out-dir", required=True, help="directory for main.csv/.md/.tex, normalised.md/.tex, seeds.csv")
    p.add_argument("--reference", help="run the normalised view compares to (e.g. full)")
    p.add_argument("--groups", type=json_arg, default="{}", help='JSON {sweep: {variant run: "lr=0.001"}}: a tuned row per sweep')
    p.add_argument("--digits", type=int, default=1, help="decimals shown")
    p.add_argument("--std", action=argparse.BooleanOptionalAction, default=True, help="show ± std over seeds")
    p.add_argument("--bold", action=argparse.BooleanOptionalAction, default=True, help="mark the best value per column")
    p.add_argument("--expect", type=json_arg, help='JSON {"runs", "sweeps", "tasks", "seeds", "searched"}: refuse a partial table')
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("plots", help="figures from the tidy table: Pareto (Spec vs Vers) per task, Uni per method")
    p.add_argument("--table", required=True, help="tables/main.csv")
    p.add_argument("--out-dir", required=True, help="directory for the figures (PNG and PDF)")
    p.add_argument("--collect", type=json_arg, default="{}", help='JSON {target: source}: other figures to copy in (search trees, heatmaps)')
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("landscape", help="loss landscape of a model along filter-normalised random directions")
    _model_args(p)
    p.add_argument("--task-data", required=True, help="speciality JSONL (a seeded sample is the fixed batch)")
    p.add_argument("--vers-suites", type=json_arg, required=True, help='JSON {name: {"path", "type"}}: the fixed versatility batch')
    p.add_argument("--options", type=json_arg, required=True, help="JSON: span, points_1d, points_2d, radius, batch_size, direction_seed, data_seed")
    p.add_argument("--labels", type=json_arg, required=True, help='JSON {"run", "task", "seed"} stored with the result')
    p.add_argument("--max-len", type=int, required=True, help="tokens per example")
    p.add_argument("--mask-prompt", action=argparse.BooleanOptionalAction, default=True, help="loss on responses only")
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--plot", required=True, help="figure path without suffix (PNG and PDF)")
    p.set_defaults(func=cmd_landscape)

    p = sub.add_parser("sharpness", help="sharpness table and rank correlation with the Vers drop")
    p.add_argument("files", nargs="+", help="landscape JSON files and the score files of the same models (and base)")
    p.add_argument("--out-dir", required=True, help="directory for sharpness.csv/.md and sharpness_correlation.csv")
    p.add_argument("--plot-dir", required=True, help="directory for landscape_<task>.png/pdf (every run's 1-D curves)")
    p.set_defaults(func=cmd_sharpness)

    p = sub.add_parser("search-step", help="one depth of the coarse search: score, select, expand")
    p.add_argument("--task", required=True, help="speciality task")
    p.add_argument("--depth", type=int, required=True, help="depth of this step (0 seeds the search)")
    p.add_argument("--policy", type=json_arg, required=True, help="JSON of the search policy")
    p.add_argument("--n-layers", type=int, required=True, help="decoder layers of the model")
    p.add_argument("--split", default="val", help="split the scores come from (recorded in the trace)")
    p.add_argument("--reference", required=True, help="score file of the reference run (Full SFT)")
    p.add_argument("--previous", help="the previous depth's file (depth >= 1)")
    p.add_argument("--candidates", type=json_arg, default="{}", help="JSON {candidate id: score file} of this depth")
    p.add_argument("--out", required=True, help="this depth's JSON file")
    p.set_defaults(func=cmd_search_step)

    p = sub.add_parser("search-report", help="trace, table and tree figure of a finished search")
    p.add_argument("depth_files", nargs="+", help="depth JSON files in order")
    p.add_argument("--task", required=True, help="speciality task")
    p.add_argument("--n-layers", type=int, required=True, help="decoder layers of the model")
    p.add_argument("--out-dir", required=True, help="directory for result.json, trace.csv, table.md, tree.png/pdf")
    p.set_defaults(func=cmd_search_report)

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

    p = sub.add_parser("bench-region", help="step time and memory of a region vs Full SFT, side by side")
    p.add_argument("--model", required=True, help="model directory (e.g. results/default/base_model)")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--template", default="{instruction} {input} =", help="prompt format string")
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
    p.add_argument("--template", default="{instruction} {input} =", help="prompt format string")
    p.add_argument("--range", nargs=2, default=["0.25", "0.75"], help="layer range a b (fractions)")
    p.add_argument("--modules", nargs="+", default=["mha", "ffn"], help="module groups")
    p.add_argument("--groups", type=json_arg, default=json.dumps(DEFAULT_GROUPS), help="JSON module groups")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement (short: variants alternate often)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=30, help="alternating repeats, order rotating (median step reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--gap-steps", type=int, default=200, help="steps of the trajectory comparison (0: skip it)")
    p.add_argument("--gap-lr", type=float, default=3e-4, help="learning rate of the trajectory comparison")
    p.set_defaults(func=cmd_bench_softmask)

    p = sub.add_parser("lm-eval", help="(optional, needs lm-eval) harness tasks on a checkpoint, as a cofi score file")
    _model_load_args(p)
    p.add_argument("--tasks", required=True,
                   help='JSON {"spec": {task: [harness task, ...]}, "vers": {"know": [...], "reason": [...], "instruct": [...]}}; '
                        'an entry may be {"task": name, "metric": "acc_norm,none"}')
    p.add_argument("--include-path", help="directory of extra task YAMLs (e.g. from lm-eval-task)")
    p.add_argument("--labels", type=json_arg, default="{}", help="JSON labels stored with the scores (method, task, seed)")
    p.add_argument("--batch-size", type=int, default=32, help="harness batch size")
    p.add_argument("--limit", type=int, default=None, help="at most this many items per task")
    p.add_argument("--out", required=True, help="scores JSON (the format of evaluate)")
    p.set_defaults(func=cmd_lm_eval)

    p = sub.add_parser("lm-eval-task", help="write an lm-eval task YAML over one of cofi's JSONL suites")
    p.add_argument("--name", required=True, help="task name")
    p.add_argument("--data", required=True, help="JSONL suite")
    p.add_argument("--type", required=True, choices=["generation", "multiple_choice"], help="suite type")
    p.add_argument("--template", required=True, help="cofi prompt template ({instruction}, {input})")
    p.add_argument("--max-gen-toks", type=int, default=64, help="generation length (generation suites)")
    p.add_argument("--out-dir", required=True, help="directory for <name>.yaml")
    p.set_defaults(func=cmd_lm_eval_task)

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

    p = sub.add_parser("bench-sam", help="SAM step time vs plain AdamW (Full SFT), side by side")
    p.add_argument("--model", required=True, help="model directory (e.g. results/default/base_model)")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--template", default="{instruction} {input} =", help="prompt format string")
    p.add_argument("--rho", type=float, default=0.05, help="SAM radius")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=20, help="alternating repeats (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=cmd_bench_sam)

    p = sub.add_parser("bench-search", help="tree search vs grid: share trained and Uni gap")
    p.add_argument("--tree", required=True, help="results/<exp>/search/tree")
    p.add_argument("--grid", required=True, help="results/<exp>/search/grid")
    p.set_defaults(func=cmd_bench_search)

    p = sub.add_parser("bench-report", help="per-rule times from Snakemake benchmark files")
    p.add_argument("benchmarks", help="directory of benchmark TSV files (searched recursively)")
    p.set_defaults(func=cmd_bench_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cofi.errors import InputError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as error:  # bad data, config or model path: say what is wrong, no traceback
        print(f"cofi {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
