"""GPU check: a randomly initialised 1B-class Llama fine-tuned through ``python -m cofi finetune``.

Not a test (it needs a GPU); a measurement. It writes a Hugging Face model directory (a word-level
tokenizer, random weights as safetensors) and fixed-length random JSONL examples, runs the same
finetune command line the workflow runs, and reports training tokens per second and model-FLOPs
utilisation (MFU) from the loss curve's step times, then times batched evaluation of the result.

FLOPs per token follow the usual count (PaLM, appendix B): 6 × the weights a token passes through
(all but the input embedding, which is a lookup) plus 12 × layers × hidden × sequence length for
the attention scores and values, counted over the full square as that convention does.
"""

from __future__ import annotations

import json
import random
from functools import partial
import subprocess
import sys
import time
from pathlib import Path

# Dense bf16 peak (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}

ONE_B = {"layers": 22, "hidden": 2048, "intermediate": 5632, "heads": 32, "kv_heads": 8, "vocab": 32000}


def flops_per_token(arch: dict, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) of a Llama of ``arch`` at ``seq_len``."""
    hidden, layers, inter = arch["hidden"], arch["layers"], arch["intermediate"]
    head_dim = hidden // arch["heads"]
    kv = arch["kv_heads"] * head_dim
    per_layer = hidden * hidden * 2 + hidden * kv * 2 + 3 * hidden * inter  # q, o; k, v; gate, up, down
    weights = layers * per_layer + hidden * arch["vocab"]  # + the output head (the input embedding is a lookup)
    return 6.0 * weights + 12.0 * layers * hidden * seq_len


def write_model(out_dir: Path, arch: dict, seed: int) -> int:
    """Random weights in bfloat16 and a word-level tokenizer; returns the parameter count."""
    import torch
    from transformers import LlamaForCausalLM

    from cofi.models.loading import build_word_tokenizer, llama_config

    tokenizer = build_word_tokenizer([f"w{i}" for i in range(arch["vocab"] - 4)])
    config = llama_config(len(tokenizer), {**arch, "max_len": 4096})
    torch.manual_seed(seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


def _random_words(rng: random.Random, vocab: int, k: int) -> str:
    return " ".join(f"w{rng.randrange(vocab - 4)}" for _ in range(k))


def write_data(path: Path, n: int, seq_len: int, vocab: int, seed: int) -> None:
    """Records whose prompt is short and whose response runs past ``seq_len``: every example is cut
    to exactly ``seq_len`` tokens, so each step processes batch × seq_len tokens."""
    rng = random.Random(seed)
    words = partial(_random_words, rng, vocab)
    with open(path, "w") as handle:
        for _ in range(n):
            handle.write(json.dumps({"instruction": words(1), "input": words(15), "output": words(seq_len)}) + "\n")


def write_suites(directory: Path, n: int, vocab: int, seed: int) -> dict:
    rng = random.Random(seed)
    words = partial(_random_words, rng, vocab)
    generation, choice = directory / "gen.jsonl", directory / "mc.jsonl"
    generation.write_text("".join(json.dumps({"instruction": words(1), "input": words(24), "output": words(16)}) + "\n"
                                  for _ in range(n)))
    items = []
    for _ in range(n):
        options, answer = [words(4) for _ in range(4)], rng.randrange(4)
        items.append({"instruction": words(1), "input": words(24), "output": options[answer], "choices": options,
                      "answer": answer})
    choice.write_text("".join(json.dumps(item) + "\n" for item in items))
    gen = {"path": str(generation), "type": "generation", "metric": "exact_match"}
    # The score format needs the three versatility dimensions; two reuse the generation items.
    return {"spec": {"gen": gen}, "vers": {"know": {"path": str(choice), "type": "multiple_choice", "metric": "accuracy"},
                                           "reason": gen, "instruct": gen}}


def peak_tflops(name: str) -> float | None:
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def run(work_dir: str | Path, steps: int, warmup: int, batch_size: int, seq_len: int, gradient_checkpointing: bool,
        peak: float | None, eval_items: int, layers: int | None = None) -> dict:
    import pandas as pd
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu-check needs a CUDA GPU (torch.cuda.is_available() is False)")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    arch = {**ONE_B, **({"layers": layers} if layers else {})}
    started = time.perf_counter()
    n_params = write_model(work / "base", arch, seed=0)
    write_data(work / "train.jsonl", n=batch_size * 4, seq_len=seq_len, vocab=arch["vocab"], seed=0)
    build_s = time.perf_counter() - started
    from cofi.config.runs import Run
    from cofi.config.settings import TrainSettings

    settings = TrainSettings(lr=1e-4, steps=steps, batch_size=batch_size, warmup_ratio=0.1, log_every=max(1, steps // 5))
    prompt = {"template": "{instruction} {input} :", "mask_prompt": True, "max_len": seq_len}
    compute = {"precision": "bf16", "gradient_checkpointing": gradient_checkpointing}
    command = [sys.executable, "-m", "cofi", "finetune", "--model", str(work / "base"),
               "--run-spec", json.dumps(Run(name="gpu-check", method="full", train=settings).spec()),
               "--train", str(work / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt),
               "--compute", json.dumps({**compute, "device": "cuda"}), "--dtype", "bfloat16",
               "--out", str(work / "tuned"), "--curve", str(work / "loss.csv")]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    job_s = time.perf_counter() - started
    curve = pd.read_csv(work / "loss.csv")
    timed = curve[curve["step"] > warmup]
    seconds = float(curve["seconds"].iloc[-1] - curve.loc[curve["step"] == warmup, "seconds"].iloc[0])
    tokens_per_s = len(timed) * batch_size * seq_len / seconds
    achieved = tokens_per_s * flops_per_token(arch, seq_len) / 1e12
    name = torch.cuda.get_device_name()
    peak = peak or peak_tflops(name)
    suites = write_suites(work, eval_items, arch["vocab"], seed=1)
    started = time.perf_counter()
    scoring = {"model": str(work / "tuned"), "suites": suites, "labels": {}, "out": str(work / "scores.json")}
    subprocess.run([sys.executable, "-m", "cofi", "evaluate", "--prompt", json.dumps(prompt), "--scorings",
                    json.dumps([scoring]), "--batch-size", "64", "--dtype", "bfloat16", "--device", "cuda"], check=True)
    eval_s = time.perf_counter() - started
    return {
        "gpu": name, "torch": torch.__version__, "parameters": n_params, "arch": arch,
        "batch_size": batch_size, "seq_len": seq_len, "steps": steps, "timed_steps": len(timed),
        "gradient_checkpointing": gradient_checkpointing, "precision": "bf16 autocast, float32 trained weights",
        "s_per_step": seconds / len(timed), "tokens_per_s": tokens_per_s, "model_tflops_per_s": achieved,
        "peak_tflops": peak, "mfu": achieved / peak if peak else None,
        "final_loss": float(curve["loss"].iloc[-1]), "first_loss": float(curve["loss"].iloc[0]),
        "peak_gpu_memory_gb": json.loads((work / "tuned" / "cofi_run.json").read_text()).get("peak_gpu_memory_gb"),
        "finetune_job_s": job_s, "build_s": build_s,
        "evaluate_job_s": eval_s, "eval_items": 4 * eval_items,
    }
