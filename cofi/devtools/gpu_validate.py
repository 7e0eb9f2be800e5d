"""GPU validation: one prepared script that measures, on one GPU in a few minutes, what the docs and the plan claim.

Every step goes through cofi's own code: the finetune, importance and landscape jobs as the workflow runs them
(``python -m cofi ...``), FSDP2 through :mod:`cofi.training.sharding`, the loss through :func:`cofi.training.loop.token_loss_sum`.
Steps, in order (each timed; one that fails is recorded and the next runs; what is left when the time budget is
spent is recorded as skipped):

1. ``environment``: versions, the device and whether it computes in bf16;
2. ``models``: random bf16 Llamas: the 1.1B shape (TinyLlama's) and a 7B-width slice of a few layers;
3. ``finetune``: Full SFT of the 1.1B model by the finetune job: tokens/s, MFU, peak memory against the plan;
4. ``fsdp``: FSDP2 at world size 1 on the slice: step time against the plain path, peak memory at grad_accum 1 and 4;
5. ``checkpoint``: a DCP save and load of the sharded slice compared tensor by tensor; the gathered state written as
   safetensors, reloaded through cofi's loader, with the same logits;
6. ``methods``: one importance batch, then region + soft mask, SAM, L2 and LoRA on the slice by the finetune job:
   step time against Full SFT's and peak memory against the plan;
7. ``loss``: one loss and its backward at a 128k vocabulary: time and peak memory against the plan's loss path;
8. ``generation``: greedy generation by the fine-tuned 1.1B model: new tokens per second;
9. ``landscape``: the landscape job on the smallest grid (3 points, 3 × 3): seconds per point;
10. ``backends``: the evaluate job on the fine-tuned 1.1B model with ``backend: hf`` and ``backend: vllm`` (where
    vLLM is installed), the same suites (generation and multiple choice): each job's seconds, and the items the
    two score alike.

``--smoke`` runs the same steps on the CPU with tiny shapes, each job's command line in this process
(``tests/devtools/test_gpu_validate.py``), so the script cannot rot between the times a GPU is available. Peak memory is
CUDA's allocator's (``max_memory_allocated``); on the CPU it is not measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from cofi.devtools.gpu_check import ONE_B, flops_per_token, peak_tflops, write_data, write_model

SEVEN_B_SLICE = {"layers": 4, "hidden": 4096, "intermediate": 11008, "heads": 32, "kv_heads": 32, "vocab": 32000}
SIZES = {
    "gpu": {"model": ONE_B, "slice": SEVEN_B_SLICE, "batch": 8, "seq": 1024, "steps": 30, "warmup": 10,
            "method_steps": 8, "method_warmup": 3, "loss_vocab": 128256, "loss_tokens": 8 * 1024, "gen_batch": 32,
            "gen_tokens": 128, "eval_items": 256, "budget_s": 420},
    "smoke": {"model": {"layers": 2, "hidden": 64, "intermediate": 128, "heads": 4, "kv_heads": 2, "vocab": 300},
              "slice": {"layers": 2, "hidden": 96, "intermediate": 160, "heads": 4, "kv_heads": 4, "vocab": 300},
              "batch": 4, "seq": 32, "steps": 4, "warmup": 1, "method_steps": 3, "method_warmup": 1,
              "loss_vocab": 4096, "loss_tokens": 64, "gen_batch": 2, "gen_tokens": 4, "eval_items": 4, "budget_s": 600},
}
GIB = 2**30
PROMPT = {"template": "{instruction} {input} :", "mask_prompt": True}


class Context:
    """What the steps share: the sizes, the device, the work directory and what earlier steps made."""

    def __init__(self, work: Path, smoke: bool):
        import torch

        self.work, self.smoke, self.size = work, smoke, SIZES["smoke" if smoke else "gpu"]
        self.device = "cpu" if smoke else "cuda"
        self.cuda = self.device == "cuda"
        self.dtype = "float32" if smoke else "bfloat16"  # bf16 matmuls on a CPU are slow and not what is measured
        self.precision = "fp32" if smoke else "bf16"
        self.prompt = {**PROMPT, "max_len": self.size["seq"]}
        self.torch = torch
        self.made: dict = {}

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / GIB if self.cuda else None

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()


def _job(ctx: Context, args: list[str]) -> None:
    """A cofi job: its own process on the GPU, as the workflow runs it; in smoke mode in this process (the same
    command line, without a fresh interpreter for each of the eight jobs)."""
    if ctx.smoke:
        from cofi.cli import main

        if main(args) != 0:
            raise RuntimeError(f"cofi {args[0]} failed")
        return
    subprocess.run([sys.executable, "-m", "cofi", *args], check=True, capture_output=True, text=True)


def _run_spec(name: str, entry: dict, steps: int, batch: int, module_groups: dict):
    from cofi.config.runs import make_run

    training = {"lr": 1e-4, "steps": steps, "batch_size": batch, "grad_accum": 1, "warmup_ratio": 0.1,
                "weight_decay": 0.0, "max_grad_norm": 1.0, "log_every": max(1, steps // 3)}
    return make_run(name, entry, training, module_groups)


def _finetune(ctx: Context, model: Path, run, out: Path, warmup: int, inputs: dict | None = None) -> dict:
    """The finetune job as the workflow runs it; its seconds per step after ``warmup`` steps, and its record."""
    import pandas as pd

    compute = {"precision": ctx.precision, "device": ctx.device}
    command = ["finetune", "--model", str(model), "--run-spec", json.dumps(run.spec()),
               "--train", str(ctx.made["train"]), "--seed", "0", "--prompt", json.dumps(ctx.prompt),
               "--compute", json.dumps(compute), "--dtype", ctx.dtype, "--out", str(out / "model"),
               "--curve", str(out / "loss.csv"), "--inputs", json.dumps({k: str(v) for k, v in (inputs or {}).items()})]
    started = time.perf_counter()
    _job(ctx, command)
    job_s = time.perf_counter() - started
    curve = pd.read_csv(out / "loss.csv")
    timed = curve[curve["step"] > warmup]
    seconds = float(curve["seconds"].iloc[-1] - curve.loc[curve["step"] == warmup, "seconds"].iloc[0])
    record = json.loads((out / "model" / "cofi_run.json").read_text())
    return {"job_s": job_s, "s_per_step": seconds / len(timed), "peak_gib": record.get("peak_gpu_memory_gb"),
            "first_loss": float(curve["loss"].iloc[0]), "last_loss": float(curve["loss"].iloc[-1])}


def _planned_gib(ctx: Context, model: Path, run) -> float:
    """The plan's figure for ``run`` on one GPU, less its assumed CUDA overhead (the allocator's peak excludes it)."""
    from cofi.models.plan import CUDA_OVERHEAD_GIB, Architecture, needs

    planned = needs(Architecture.load(str(model)), run, run.params.get("groups") or {}, 1, ctx.size["seq"], ctx.dtype,
                    ctx.precision)
    return planned.total(False) / GIB - CUDA_OVERHEAD_GIB


def step_environment(ctx: Context) -> dict:
    import peft
    import transformers

    torch = ctx.torch
    found = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
             "peft": peft.__version__, "cuda": torch.version.cuda, "device": ctx.device}
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        found |= {"gpu": torch.cuda.get_device_name(), "gpu_memory_gib": props.total_memory / GIB,
                  "capability": f"{props.major}.{props.minor}", "bf16": torch.cuda.is_bf16_supported()}
    return found


def step_models(ctx: Context) -> dict:
    found = {}
    for name in ("model", "slice"):
        started = time.perf_counter()
        directory = ctx.work / name
        found[f"{name}_parameters"] = write_model(directory, ctx.size[name], seed=0)
        found[f"{name}_write_s"] = time.perf_counter() - started
        ctx.made[name] = directory
    ctx.made["train"] = ctx.work / "train.jsonl"
    write_data(ctx.made["train"], n=ctx.size["batch"] * 4, seq_len=ctx.size["seq"], vocab=ctx.size["model"]["vocab"], seed=0)
    return found


def step_finetune(ctx: Context) -> dict:
    size = ctx.size
    run = _run_spec("full", {"method": "full"}, size["steps"], size["batch"], {})
    measured = _finetune(ctx, ctx.made["model"], run, ctx.work / "full", size["warmup"])
    ctx.made["tuned"] = ctx.work / "full" / "model"
    tokens_per_s = size["batch"] * size["seq"] / measured["s_per_step"]
    tflops = tokens_per_s * flops_per_token(size["model"], size["seq"]) / 1e12
    peak = peak_tflops(ctx.torch.cuda.get_device_name()) if ctx.cuda else None
    return {**measured, "tokens_per_s": tokens_per_s, "model_tflops_per_s": tflops, "peak_tflops": peak,
            "mfu": tflops / peak if peak else None, "planned_gib": _planned_gib(ctx, ctx.made["model"], run)}


def _sharded_slice(ctx: Context):
    """The slice as a training job on one process would hold it: float32 masters, FSDP2 over a one-device mesh."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from cofi.training import sharding
    from cofi.models.loading import load_model

    if not dist.is_initialized():
        port = 29500 + os.getpid() % 1000
        dist.init_process_group("nccl" if ctx.cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                                world_size=1)
    model, tokenizer = load_model(ctx.made["slice"], dtype="float32", device=ctx.device)
    mesh = init_device_mesh(ctx.device, (1,))
    return sharding.shard_model(model, mesh, ctx.precision), tokenizer


def _batch(ctx: Context, vocab: int, rows: int):
    generator = ctx.torch.Generator().manual_seed(0)
    ids = ctx.torch.randint(4, vocab, (rows, ctx.size["seq"]), generator=generator).to(ctx.device)
    return {"input_ids": ids, "attention_mask": ctx.torch.ones_like(ids), "labels": ids}


def _time_steps(ctx: Context, model, batches: list[dict], steps: int):
    """Seconds per optimizer step (after one warm-up step) of cofi's trainer over ``batches`` as micro-batches, and
    the trainer (its optimizer holds state afterwards)."""
    from cofi.config.settings import ComputeSettings, TrainSettings
    from cofi.training.loop import Trainer

    settings = TrainSettings(lr=1e-5, steps=steps + 1, batch_size=len(batches[0]["input_ids"]),
                             grad_accum=len(batches))
    trainer = Trainer(model, settings, 0, ComputeSettings(precision=ctx.precision), ())
    trainer.step(batches)
    ctx.sync()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step(batches)
    ctx.sync()
    return (time.perf_counter() - started) / steps, trainer


def step_fsdp(ctx: Context) -> dict:
    from cofi.models.loading import load_model

    size = ctx.size
    rows = max(1, size["batch"] // 4)
    batch = _batch(ctx, size["slice"]["vocab"], rows)
    steps = size["method_steps"]
    plain, _ = load_model(ctx.made["slice"], dtype="float32", device=ctx.device)
    ctx.reset_peak()
    plain_s, _ = _time_steps(ctx, plain, [batch], steps)
    plain_peak = ctx.peak_gib()
    del plain
    model, _ = _sharded_slice(ctx)
    ctx.reset_peak()
    sharded_s, _ = _time_steps(ctx, model, [batch], steps)
    peak_1 = ctx.peak_gib()
    ctx.reset_peak()
    accum_s, _ = _time_steps(ctx, model, [batch] * 4, 2)
    peak_4 = ctx.peak_gib()
    ctx.made["sharded"] = model
    return {"rows_per_micro_batch": rows, "plain_s_per_step": plain_s, "sharded_s_per_step": sharded_s,
            "sharded_over_plain": sharded_s / plain_s, "plain_peak_gib": plain_peak, "peak_gib_accum_1": peak_1,
            "peak_gib_accum_4": peak_4, "accum_4_s_per_step": accum_s}


def step_checkpoint(ctx: Context) -> dict:
    from safetensors.torch import save_file

    from cofi.training import sharding
    from cofi.models.loading import load_model

    torch = ctx.torch
    model = ctx.made.get("sharded") or _sharded_slice(ctx)[0]
    batch = _batch(ctx, ctx.size["slice"]["vocab"], 1)
    _, trainer = _time_steps(ctx, model, [batch], 1)  # optimizer state to save
    directory = ctx.work / "dcp"
    started = time.perf_counter()
    sharding.save_checkpoint(directory, model, trainer.optimizer)
    save_s = time.perf_counter() - started
    fresh, _ = _sharded_slice(ctx)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-5)
    started = time.perf_counter()
    sharding.load_checkpoint(directory, fresh, fresh_optimizer)
    load_s = time.perf_counter() - started
    differing = [name for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items())
                 if not torch.equal(sharding.local(a), sharding.local(b))]
    state = sharding.gather_full_state(model)
    out = ctx.work / "gathered"
    out.mkdir(exist_ok=True)
    save_file({name: tensor.contiguous().clone() for name, tensor in state.items()}, str(out / "model.safetensors"))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (ctx.made["slice"] / name).exists():
            (out / name).write_bytes((ctx.made["slice"] / name).read_bytes())
    reloaded, _ = load_model(out, dtype="float32", device=ctx.device)
    with torch.no_grad():
        ids = batch["input_ids"]
        sharded_logits = model(input_ids=ids).logits.float()
        with torch.autocast(ctx.device, dtype=torch.bfloat16, enabled=ctx.cuda):
            reloaded_logits = reloaded(input_ids=ids).logits.float()
    difference = float((sharded_logits - reloaded_logits).abs().max())
    return {"dcp_save_s": save_s, "dcp_load_s": load_s, "tensors_compared": len(model.state_dict()),
            "tensors_differing": differing, "logits_max_abs_difference": difference,
            "logits_equal": difference <= (0.0 if not ctx.cuda else 5e-2)}


def step_methods(ctx: Context) -> dict:
    from cofi.search.regions import DEFAULT_GROUPS as groups

    size = ctx.size
    importance = ctx.work / "importance.safetensors"
    started = time.perf_counter()
    _job(ctx, ["importance", "--model", str(ctx.made["slice"]), "--data",
                    str(ctx.made["train"]), "--options", json.dumps({"dropout": 0.003, "batches": 1, "batch_size": size["batch"], "signed": False, "seed": 0}),
                    "--prompt", json.dumps(ctx.prompt), "--dtype", ctx.dtype, "--device", ctx.device, "--out",
                    str(importance), "--plot", str(ctx.work / "importance.png")])
    found = {"importance_one_batch_job_s": time.perf_counter() - started}
    entries = {"full": {"method": "full"},
               "region_softmask": {"method": "cofitune", "range": [0.25, 0.75], "modules": list(groups),
                                   "softmask": "grad"},
               "sam": {"method": "full", "sam": {"rho": 0.05}},
               "l2": {"method": "l2", "lambda": 1e-4},
               "lora": {"method": "lora", "rank": 16, "alpha": 32}}
    for name, entry in entries.items():
        run = _run_spec(name, entry, size["method_steps"], size["batch"], groups)
        inputs = {"importance": importance} if name == "region_softmask" else None
        measured = _finetune(ctx, ctx.made["slice"], run, ctx.work / "methods" / name, size["method_warmup"], inputs)
        found[name] = {**measured, "planned_gib": _planned_gib(ctx, ctx.made["slice"], run)}
    for name in entries:
        found[name]["step_time_over_full"] = found[name]["s_per_step"] / found["full"]["s_per_step"]
    return found


def step_loss(ctx: Context) -> dict:
    """The loss path at a large vocabulary alone: logits as the head writes them, the loss, its backward."""
    from cofi.models.plan import LOSS_PATH_TRANSIENT

    torch, vocab, tokens = ctx.torch, ctx.size["loss_vocab"], ctx.size["loss_tokens"]

    class Head(torch.nn.Module):  # stands in for the model: token_loss_sum reads .logits of its output
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones((), device=ctx.device))
            self.logits = torch.randn(1, tokens, vocab, device=ctx.device, dtype=getattr(torch, ctx.dtype))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.logits * self.scale})()

    from cofi.training.loop import token_loss_sum

    head = Head()
    labels = torch.randint(0, vocab, (1, tokens), device=ctx.device)
    batch = {"input_ids": labels, "attention_mask": torch.ones_like(labels), "labels": labels}
    ctx.reset_peak()
    before = torch.cuda.memory_allocated() if ctx.cuda else 0
    started = time.perf_counter()
    loss, count = token_loss_sum(head, batch)
    (loss / count).backward()
    ctx.sync()
    seconds = time.perf_counter() - started
    measured = (torch.cuda.max_memory_allocated() - before) / GIB if ctx.cuda else None
    planned = tokens * vocab * (4 + LOSS_PATH_TRANSIENT) / GIB  # the log-softmax kept, and the transients
    return {"vocab": vocab, "tokens": tokens, "seconds": seconds, "peak_above_logits_gib": measured,
            "planned_gib": planned}


def step_generation(ctx: Context) -> dict:
    from cofi.models.loading import load_model

    torch, size = ctx.torch, ctx.size
    model, tokenizer = load_model(ctx.made.get("tuned") or ctx.made["model"], dtype=ctx.dtype, device=ctx.device)
    ids = _batch(ctx, size["model"]["vocab"], size["gen_batch"])["input_ids"][:, :64]
    with torch.no_grad():
        model.generate(input_ids=ids[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        ctx.sync()
        started = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=size["gen_tokens"],
                             min_new_tokens=size["gen_tokens"], do_sample=False, pad_token_id=tokenizer.pad_token_id)
        ctx.sync()
    seconds = time.perf_counter() - started
    new = (out.shape[1] - ids.shape[1]) * out.shape[0]
    return {"batch": size["gen_batch"], "new_tokens": new, "seconds": seconds, "new_tokens_per_s": new / seconds}


def step_landscape(ctx: Context) -> dict:
    vers = {"gen": {"path": str(ctx.made["train"]), "type": "generation"}}
    options = {"span": 0.5, "points_1d": 3, "points_2d": 3, "radius": 0.25, "batch_size": ctx.size["batch"],
               "direction_seed": 0, "data_seed": 0}
    started = time.perf_counter()
    _job(ctx, ["landscape", "--model", str(ctx.made.get("tuned") or ctx.made["model"]),
                    "--task-data", str(ctx.made["train"]), "--vers-suites", json.dumps(vers), "--options",
                    json.dumps(options), "--labels", json.dumps({"run": "full", "task": "random", "seed": 0}),
                    "--prompt", json.dumps(ctx.prompt), "--dtype", ctx.dtype, "--device", ctx.device,
                    "--out", str(ctx.work / "landscape.json"), "--plot", str(ctx.work / "landscape")])
    seconds = time.perf_counter() - started
    points = options["points_1d"] + options["points_2d"] ** 2
    return {"job_s": seconds, "points": points, "s_per_point_upper_bound": seconds / points}


def step_backends(ctx: Context) -> dict:
    """The evaluate job as the workflow runs it, through Hugging Face and through vLLM (the harness), on the same items;
    vLLM only where it can run (a GPU, vllm installed): elsewhere its part is recorded as not run."""
    import importlib.util

    from cofi.devtools.gpu_check import write_suites

    (ctx.work / "suites").mkdir(exist_ok=True)
    suites = write_suites(ctx.work / "suites", n=ctx.size["eval_items"], vocab=ctx.size["model"]["vocab"], seed=1)
    model = ctx.made.get("tuned") or ctx.made["model"]
    found, items = {"items_per_suite": ctx.size["eval_items"]}, {}
    for backend in ("hf", "vllm"):
        if backend == "vllm" and not (ctx.cuda and importlib.util.find_spec("vllm")):
            found["vllm"] = "not run: " + ("no GPU (smoke mode)" if not ctx.cuda else "vllm is not installed")
            continue
        out = ctx.work / f"scores_{backend}.json"
        scoring = {"model": str(model), "suites": suites, "labels": {"run": "full", "task": "gen", "seed": 0,
                                                                    "split": "test"}, "out": str(out)}
        started = time.perf_counter()
        _job(ctx, ["evaluate", "--scorings", json.dumps([scoring]), "--prompt", json.dumps(ctx.prompt),
                   "--batch-size", str(ctx.size["gen_batch"]), "--dtype", ctx.dtype, "--device", ctx.device,
                   "--precision", ctx.precision, "--backend", backend])
        found[f"{backend}_job_s"] = time.perf_counter() - started
        scores = json.loads(out.read_text())
        found[f"{backend}_scores"] = {"gen": scores["spec"]["gen"], "know": scores["know"]}
        items[backend] = scores["item_scores"]
    if len(items) == 2:
        pairs = [(a, b) for group in ("spec", "vers") for name in items["hf"][group]
                 for a, b in zip(items["hf"][group][name], items["vllm"][group][name])]
        found["items_alike"], found["items_compared"] = sum(a == b for a, b in pairs), len(pairs)
        found["vllm_speedup"] = found["hf_job_s"] / found["vllm_job_s"]
    return found


STEPS = {"environment": step_environment, "models": step_models, "finetune": step_finetune, "fsdp": step_fsdp,
         "checkpoint": step_checkpoint, "methods": step_methods, "loss": step_loss, "generation": step_generation,
         "landscape": step_landscape, "backends": step_backends}


def validate(work_dir: str | Path, smoke: bool = False, budget_s: float | None = None, log=print) -> dict:
    """Every step in order; ``{"steps": {name: {"status", "seconds", ...}}, "total_s"}``."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(work, smoke)
    if ctx.cuda and not ctx.torch.cuda.is_available():
        raise SystemExit("gpu-validate needs a CUDA GPU (torch.cuda.is_available() is False); --smoke runs on the CPU")
    budget = budget_s if budget_s is not None else ctx.size["budget_s"]
    started, steps = time.perf_counter(), {}
    for name, step in STEPS.items():
        if time.perf_counter() - started > budget:
            steps[name] = {"status": "skipped", "why": f"the {budget:.0f} s budget was spent"}
            continue
        begun = time.perf_counter()
        try:
            found = {"status": "ok", **step(ctx)}
        except Exception as error:  # a failed step is a finding; the others still run
            detail = error.stderr[-2000:] if isinstance(getattr(error, "stderr", None), str) else ""
            found = {"status": "failed", "error": f"{type(error).__name__}: {error}", "detail": detail,
                     "traceback": traceback.format_exc()[-3000:]}
        found["seconds"] = time.perf_counter() - begun
        steps[name] = found
        log(f"{name}: {found['status']} in {found['seconds']:.1f} s")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return {"mode": "smoke (CPU, tiny shapes)" if smoke else "gpu", "steps": steps,
            "total_s": time.perf_counter() - started}


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def summary(result: dict) -> str:
    """The Markdown page: one line per step, then its figures."""
    lines = [f"# GPU validation ({result['mode']}), {result['total_s']:.0f} s", "", "| step | status | seconds |",
             "|:--|:--|--:|"]
    lines += [f"| {name} | {step['status']} | {_fmt(step.get('seconds'))} |" for name, step in result["steps"].items()]
    for name, step in result["steps"].items():
        figures = {key: value for key, value in step.items() if key not in ("status", "seconds", "traceback")}
        if not figures:
            continue
        lines += ["", f"## {name}", ""]
        for key, value in figures.items():
            if isinstance(value, dict):
                lines.append(f"- {key}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()))
            else:
                lines.append(f"- {key}: {_fmt(value)}")
    return "\n".join(lines) + "\n"
