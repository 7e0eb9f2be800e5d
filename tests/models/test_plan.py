"""`cofi plan`'s figures against what the tiny model holds on CPU while it trains."""

import copy
import subprocess
import sys

import pytest
import torch

from cofi.data.prompts import Prompter
from cofi.config.runs import Run
from cofi.methods.base import Extension
from cofi.models.plan import Architecture, activation_bytes, layer_activation_bytes, needs
from cofi.config.settings import TrainSettings
from cofi.training.loop import collate, token_loss_sum, tokenize_dataset, train

from conftest import REPO, TEMPLATE, TINY_ARCH


def arch_of(model) -> Architecture:
    return Architecture.from_config(model.config.to_dict())


def test_parameter_counts_are_the_models(tiny_model):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    assert arch_of(tiny_model).params == sum(p.numel() for p in tiny_model.parameters())
    qwen = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, vocab_size=50, tie_word_embeddings=True))
    config = {**qwen.config.to_dict(), "attention_bias": True}  # Qwen2 has q/k/v biases (and no o_proj bias)
    counted = Architecture.from_config(config)
    # Qwen2's o_proj has no bias: the planner counts one per attention projection, a hidden-size overcount per layer.
    assert counted.params - sum(p.numel() for p in qwen.parameters()) == 2 * 32


class StateBytes(Extension):
    """Measures what training holds after the last backward of the first step: weights, gradients,
    and AdamW's state (from the previous step: measured at the second step)."""

    def __init__(self, model):
        self.model, self.seen = model, {}

    def attach(self, optimizer):
        self.optimizer = optimizer

    def after_backward(self):
        if "gradients" in self.seen:
            state = self.optimizer.state.values()
            self.seen["optimizer"] = sum(t.numel() * t.element_size() for s in state for k, t in s.items() if k != "step")
            return
        self.seen["weights"] = sum(p.numel() * p.element_size() for p in self.model.parameters())
        self.seen["gradients"] = sum(p.grad.numel() * p.grad.element_size() for p in self.model.parameters()
                                     if p.grad is not None)


@pytest.mark.parametrize("method, extra", [("full", {}), ("l2", {"lambda": 0.1}), ("region", {"range": ["1/2", "1"], "modules": ["ffn"]})])
def test_model_state_figures_are_the_bytes_training_holds(tiny_model, tokenizer, tiny_world, tmp_path, method, extra):
    from cofi.methods import METHODS, Inputs

    groups = {"mha": ["q_proj", "k_proj", "v_proj"], "ffn": ["up_proj", "down_proj"]}
    run = Run(name=method, method=method, train=TrainSettings(lr=1e-3, steps=2, batch_size=4),
              params={**extra, **({"groups": groups} if method == "region" else {})})
    examples = tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)
    model = copy.deepcopy(tiny_model)
    setup = METHODS[method].setup(model, run, Inputs(seed=0, tokenize=None, load_model=None))
    probe = StateBytes(model)
    train(model, examples, run.train, 0, 0, tmp_path / "c.csv", log=lambda _: None, extensions=[*setup.extensions, probe])
    planned = needs(arch_of(model), run, groups, gpus=1, max_len=32, dtype="float32", precision="fp32")
    assert planned.weights == probe.seen["weights"]
    assert planned.gradients == probe.seen["gradients"] and planned.optimizer == probe.seen["optimizer"]
    held = sum(s.numel() * s.element_size() for _, s in setup.extensions[0].pairs) if method == "l2" else 0
    assert planned.method == held


@pytest.mark.parametrize("mode", ["fp32", "bf16 weights", "autocast"])
@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("arch", [TINY_ARCH, {**TINY_ARCH, "hidden": 64, "intermediate": 160, "layers": 3}])
def test_activation_figures_are_what_the_backward_keeps(tokenizer, tiny_world, arch, checkpointing, mode):
    """Autograd's saved tensors of one forward of cofi's loss, against the planner's per-token figures:
    float32 weights; bf16 weights (what FSDP2's mixed precision gathers); float32 weights under CPU
    bf16 autocast (which also keeps bf16 copies of the weights)."""
    from cofi.models.loading import build_llama
    from cofi.training.loop import enable_gradient_checkpointing

    model = build_llama(len(tokenizer), arch, seed=0).train()
    if mode == "bf16 weights":
        model = model.to(torch.bfloat16)
    if checkpointing:
        enable_gradient_checkpointing(model)
    examples = tokenize_dataset(tiny_world["rotate_train"][:16], Prompter(tokenizer, TEMPLATE), True, 32)
    batch = collate(examples, tokenizer.pad_token_id)
    weights = {p.data_ptr() for p in model.parameters()}
    saved, seen = [0], set()

    def pack(tensor):
        if tensor.data_ptr() not in weights and (tensor.data_ptr(), tensor.shape) not in seen:
            seen.add((tensor.data_ptr(), tensor.shape))
            saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
        token_loss_sum(model, batch)
    tokens, value_bytes = batch["input_ids"].numel(), 4 if mode == "fp32" else 2
    kind = "autocast" if mode == "autocast" else "weights"
    planned = activation_bytes(arch_of(model), tokens, kind, value_bytes, checkpointing)
    if checkpointing:  # the forward keeps the layers' inputs; the recomputed layer comes in the backward
        planned -= layer_activation_bytes(arch_of(model), tokens, kind, value_bytes)
    elif mode == "autocast":  # the weights' bf16 copies (what autocast made of the used weights)
        planned += 2 * (arch_of(model).params - arch_of(model).vocab * arch_of(model).hidden)  # not the embedding
    assert planned == pytest.approx(saved[0], rel=0.15), (planned, saved[0])


def test_plan_command_names_what_each_method_needs_at_7b():
    done = subprocess.run([sys.executable, "-m", "cofi", "plan", "--config", str(REPO / "configs/llama7b_example.yaml"),
                           "--architecture", "llama2-7b", "--gpus", "8", "--gpu-memory", "80"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| run")}
    assert rows["full"][-3:] == ["yes", "yes", "2 GPUs"] and rows["lora"][-1] == "1 GPU"
    assert "6.74 B parameters" in done.stdout


def test_unsharded_accumulation_adds_the_whole_trained_gradient_to_every_gpu():
    from cofi.models.plan import GIB

    arch = Architecture.load("llama2-7b")
    for accumulation, extra in ((1, 0), (4, arch.params * 4)):
        run = Run(name="full", method="full", train=TrainSettings(batch_size=16, grad_accum=accumulation))
        sharded = needs(arch, run, {}, 8, 1024, "bfloat16", "bf16")
        unsharded = needs(arch, run, {}, 8, 1024, "bfloat16", "bf16", accumulate_unsharded=True)
        assert unsharded.gradients - sharded.gradients == extra
    assert extra / GIB == pytest.approx(25.1, abs=0.1)  # the "+25 GiB per GPU at 7B"


def test_hybrid_sharding_never_holds_less_than_one_nodes_share_and_flat_does():
    from cofi.models.plan import mesh_for, shard_count, smallest_fit

    arch = Architecture.load("llama1-33b")
    run = Run(name="sam", method="full", train=TrainSettings(batch_size=64), sam_rho=0.05)
    plan = (arch, run, {}, 32, 1024, "bfloat16", "bf16")
    one_node, hybrid, flat = (needs(*plan[:3], gpus, *plan[4:], shards=shards)
                              for gpus, shards in ((8, 8), (32, shard_count(32, 8, "hybrid")), (32, shard_count(32, 8, "flat"))))
    assert hybrid.weights == one_node.weights and hybrid.optimizer == one_node.optimizer
    assert flat.weights < one_node.weights and flat.optimizer * 4 == pytest.approx(one_node.optimizer, rel=1e-6)
    fit = dict(max_len=1024, dtype="bfloat16", precision="bf16", gpu_memory_gib=80, checkpointing=True, gpus_per_node=8)
    assert smallest_fit(arch, run, {}, **fit, sharding="hybrid") is None  # 33B SAM: no node count helps
    fewest = smallest_fit(arch, run, {}, **fit, sharding="flat")
    assert fewest is not None and fewest > 8 and smallest_fit(arch, run, {}, **fit, sharding="auto") == fewest
    assert mesh_for(arch, run, {}, fewest, 1024, "bfloat16", "bf16", 80, True, 8, "auto") == "flat"
    small = Run(name="lora", method="lora", train=TrainSettings(batch_size=64),
                params={"rank": 8, "target_modules": ["q_proj", "v_proj"], "range": None})
    assert mesh_for(arch, small, {}, 16, 1024, "bfloat16", "bf16", 80, True, 8, "auto") == "hybrid"


PROBE_ARCH = {"vocab": 32000, "layers": 2, "hidden": 64, "intermediate": 128, "heads": 4}
PROBED = {"full": ("full", {}, {}), "full, 2 micro-batches": ("full", {}, {"grad_accum": 2}),
          "l2": ("l2", {"lambda": 0.1}, {}),
          "sam": ("full", {"sam_rho": 0.05}, {}),
          "region": ("region", {"range": ["1/2", "1"], "modules": ["ffn"],
                                "groups": {"mha": ["q_proj", "k_proj", "v_proj"], "ffn": ["up_proj", "down_proj"]}}, {}),
          "lora": ("lora", {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "range": None}, {})}


@pytest.fixture(scope="module")
def probed():
    """{case: peak bytes per process}, every case measured in one torchrun (tests/plan_probe.py)."""
    import json
    import os

    specs = [{"method": method, "params": params, "arch": PROBE_ARCH, "max_len": 64,
              "train": {"batch_size": 4, "lr": 1e-3, **train_extra}} for method, params, train_extra in PROBED.values()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(REPO / "tests" / "plan_probe.py"), json.dumps(specs)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {case: line["peak"] for case, line in zip(PROBED, lines, strict=True)}


@pytest.mark.parametrize("case", PROBED)
def test_the_plan_is_within_15_percent_of_the_peak_a_sharded_step_holds(probed, case):
    """Two processes (FSDP2, gloo), a 32k vocabulary so the loss's logits weigh: the peak of two training steps,
    measured by torch's MemTracker over every tensor storage, against `cofi plan`'s figure per GPU (without its
    CUDA allowance)."""
    from cofi.models.plan import CUDA_OVERHEAD_GIB, GIB

    method, params, train_extra = PROBED[case]
    from cofi.models.loading import llama_config

    arch = Architecture.from_config(llama_config(PROBE_ARCH["vocab"], {**PROBE_ARCH, "max_len": 64}).to_dict())
    run = Run(name=case, method=method, train=TrainSettings(batch_size=4, **train_extra), sam_rho=params.get("sam_rho"),
              params={k: v for k, v in params.items() if k != "sam_rho"})
    planned = needs(arch, run, params.get("groups", {}), 2, 64, "float32", "fp32").total(False) - int(CUDA_OVERHEAD_GIB * GIB)
    assert planned == pytest.approx(probed[case], rel=0.15), (planned, probed[case])


ANALYSIS_ARCH = {"vocab": 40000, "layers": 3, "hidden": 96, "intermediate": 256, "heads": 4}  # not the fitted shape


@pytest.mark.parametrize("job", ["importance", "importance, checkpointed", "landscape", "choice", "generation"])
def test_the_analysis_jobs_plan_is_within_15_percent_of_what_they_hold(job):
    """One process, a float32 model of another shape than the one the loss-path constants were measured on: the peak
    torch's MemTracker measures over each job's work against the plan's figure."""
    import torch

    from cofi.methods.cofitune.importance import accumulate_importance
    from cofi.analysis.landscape import batch_loss, landscape
    from cofi.models.loading import build_llama, llama_config
    from cofi.models.plan import choice_bytes, generation_bytes, importance_bytes, landscape_bytes
    from plan_probe import StepPeak

    length, rows = 48, 6
    arch = Architecture.from_config(llama_config(ANALYSIS_ARCH["vocab"], {**ANALYSIS_ARCH, "max_len": 128}).to_dict())
    model = build_llama(ANALYSIS_ARCH["vocab"], {**ANALYSIS_ARCH, "max_len": 128}, seed=0)
    ids = torch.randint(4, ANALYSIS_ARCH["vocab"], (rows, length), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    prompt = ids[:, :32]
    work = {
        "importance": (lambda: accumulate_importance(model, [batch], 0.01, seed=0),
                       importance_bytes(arch, rows, length, "float32", False)),
        "importance, checkpointed": (lambda: accumulate_importance(model, [batch], 0.01, seed=0, checkpointing=True),
                                     importance_bytes(arch, rows, length, "float32", True)),
        "landscape": (lambda: landscape(model.eval(), {"task": batch_loss(batch)}, 0.5, 3, 3, 0.25, direction_seed=0),
                      landscape_bytes(arch, rows, length, "float32").one_memory(arch.params * 4)),
        "choice": (lambda: torch.log_softmax(model.eval()(input_ids=ids, attention_mask=batch["attention_mask"]).logits.float(), -1),
                   choice_bytes(arch, rows, length, "float32")),
        "generation": (lambda: model.eval().generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16,
                                                     do_sample=False, pad_token_id=0, eos_token_id=None),
                       generation_bytes(arch, rows, 32, 16, "float32")),
    }
    run, planned = work[job]
    tracker = StepPeak()
    tracker.track_external(model, ids, prompt)
    with tracker, torch.set_grad_enabled(job.startswith("importance")):
        run()
    measured = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]
    assert planned == pytest.approx(measured, rel=0.15), (planned, measured)
