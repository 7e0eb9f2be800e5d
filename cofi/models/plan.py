"""Know before you submit: the memory each run needs per GPU, sharded over W GPUs (pure: no torch).

Per run and W: the weights, gradients and AdamW state (sharded over W, FSDP2 keeps float32 shards of the trained
weights and, under bf16/fp16, the frozen ones in that dtype), what the method adds (SAM's copy of the weights, L1/L2's start, the update mask's copy), and the
activations of one micro-batch per process at the configured length, with and without gradient
checkpointing. A single GPU trains without sharding: frozen weights in the model's dtype, float32
copies of what trains. The smallest W that fits, and the nodes it takes, are reported.

The activation figures are bytes per token, measured on CPU with autograd's saved tensors for HF
Llama with SDPA attention (``tests/models/test_plan.py`` checks them against the tiny model) in three
modes: weights in one dtype (float32; or bf16, as FSDP2's mixed precision gathers them: about
11·hidden + 4·intermediate values per layer, plus the norms' float32 copies), and autocast on one
GPU (the residual stream stays float32; it also keeps a bf16 copy of every weight a matmul used).
Outside the layers: a few values per hidden unit and the float32 log-softmax over the vocabulary.
With checkpointing, a layer keeps only its input until the backward recomputes it.

The jobs beside training are planned too, on one GPU each (importance also sharded): importance, the landscape,
evaluation (generation and multiple choice) and Wise-FT's host memory (:func:`analysis_table`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cofi.models.layers import PROJECTIONS

GIB = 2**30
CUDA_OVERHEAD_GIB = 1.5  # CUDA context, allocator and kernels: an assumption, not a measurement
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
# Architectures of well-known checkpoints, for planning without the files (config.json keys).
PRESETS = {
    "llama2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False},
    "llama2-13b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40, "num_attention_heads": 40,
                   "num_key_value_heads": 40, "vocab_size": 32000, "tie_word_embeddings": False},
    "llama1-33b": {"hidden_size": 6656, "intermediate_size": 17920, "num_hidden_layers": 60, "num_attention_heads": 52,
                   "num_key_value_heads": 52, "vocab_size": 32000, "tie_word_embeddings": False},
    "tinyllama-1.1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                       "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": False},
}


@dataclass(frozen=True)
class Architecture:
    """A Llama-family decoder, from config.json's keys."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int
    attention_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_config(cls, values: dict) -> "Architecture":
        heads = values["num_attention_heads"]
        return cls(hidden=values["hidden_size"], intermediate=values["intermediate_size"],
                   layers=values["num_hidden_layers"], heads=heads, kv_heads=values.get("num_key_value_heads") or heads,
                   vocab=values["vocab_size"], tied=bool(values.get("tie_word_embeddings", False)),
                   head_dim=values.get("head_dim") or values["hidden_size"] // heads,
                   attention_bias=bool(values.get("attention_bias", False)), mlp_bias=bool(values.get("mlp_bias", False)))

    @classmethod
    def of(cls, experiment) -> "Architecture":
        """The experiment's model: its config.json, the GGUF file's header, or the embedded base model's settings."""
        if experiment.model_files is not None:
            return cls.load(experiment.model_files)
        if experiment.model.gguf is not None:
            from cofi.models.gguf import architecture_keys

            return cls.from_config(architecture_keys(experiment.model.gguf))
        from cofi.data.world import SPECIAL_TOKENS, WorldSpec, vocabulary

        base = experiment.config["embedded"]["base"]
        vocab = len(vocabulary(WorldSpec(**experiment.config["embedded"]["world"]))) + len(SPECIAL_TOKENS)
        return cls(hidden=base["hidden"], intermediate=base["intermediate"], layers=base["layers"], heads=base["heads"],
                   kv_heads=base["heads"], vocab=vocab, tied=False, head_dim=base["hidden"] // base["heads"])

    @classmethod
    def load(cls, source: str) -> "Architecture":
        """A preset name, a model directory, or a config.json."""
        if source in PRESETS:
            return cls.from_config(PRESETS[source])
        path = Path(source)
        path = path / "config.json" if path.is_dir() else path
        return cls.from_config(json.loads(path.read_text()))

    def projection_shapes(self) -> dict[str, tuple[int, int, bool]]:
        """(in features, out features, has bias) of each projection in a decoder layer."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        a, m = self.attention_bias, self.mlp_bias
        return {"q_proj": (h, q, a), "k_proj": (h, kv, a), "v_proj": (h, kv, a), "o_proj": (q, h, a),
                "gate_proj": (h, i, m), "up_proj": (h, i, m), "down_proj": (i, h, m)}

    def projection_params(self, name: str) -> int:
        fan_in, fan_out, bias = self.projection_shapes()[name]
        return fan_in * fan_out + (fan_out if bias else 0)

    @property
    def layer_params(self) -> int:
        return sum(self.projection_params(p) for p in PROJECTIONS) + 2 * self.hidden  # + the two norms

    @property
    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * self.layer_params + self.hidden  # + the final norm


def _per_token(mode: str, value_bytes: int) -> tuple[float, float, float, float, float]:
    """Bytes per token: per layer (× hidden, × intermediate, constant), outside the layers (× hidden),
    and kept per layer under checkpointing (× hidden). ``mode``: "weights" (every value in the weights'
    ``value_bytes``, the norms' float32 copies under half precision) or "autocast" (measured)."""
    if mode == "autocast":
        return 36.0, 8.0, 22.0, 10.0, 4.0
    norms = 4.4 if value_bytes < 4 else 0.0  # RMSNorm upcasts under half precision
    return value_bytes * 11.06 + norms, value_bytes * 4.0, value_bytes * 6.0, value_bytes * 3.0, float(value_bytes)


def layer_activation_bytes(arch: Architecture, tokens: int, mode: str, value_bytes: int) -> int:
    """What one decoder layer's forward keeps for the backward."""
    per_hidden, per_intermediate, constant, _, _ = _per_token(mode, value_bytes)
    return int(tokens * (per_hidden * arch.hidden + per_intermediate * arch.intermediate + constant))


# The loss's transient float32 copies of the logits beyond the log-softmax that autograd keeps: the float32 logits and
# their shifted copy (cofi.training.loop.token_loss_sum), then their gradients in the backward: 8 bytes per vocabulary entry
# and token more (measured: 12 in all at a 32k vocabulary, tests/models/test_plan.py).
LOSS_PATH_TRANSIENT = 8


def root_unit_bytes(arch: Architecture, compute_bytes: int) -> int:
    """What stays unsharded for the whole step under FSDP2: the root unit (embeddings, head, final norm), gathered."""
    return (arch.vocab * arch.hidden * (1 if arch.tied else 2) + arch.hidden) * compute_bytes


def activation_bytes(arch: Architecture, tokens: int, mode: str, value_bytes: int, checkpointing: bool) -> int:
    """The activations of one micro-batch of ``tokens`` tokens at the backward's peak. With
    checkpointing: every layer's input, and one layer's activations while it is recomputed."""
    _, _, _, outside_hidden, kept = _per_token(mode, value_bytes)
    outside = tokens * (outside_hidden * arch.hidden + 4 * arch.vocab)  # 4: the float32 log-softmax
    layer = layer_activation_bytes(arch, tokens, mode, value_bytes)
    if checkpointing:
        return int(arch.layers * tokens * kept * arch.hidden + layer + outside)
    return int(arch.layers * layer + outside)


# The analysis and evaluation jobs (one device, no optimizer). Bytes per vocabulary entry and token beyond what
# activation_bytes counts, read from torch's MemTracker on a float32 model (2 layers, hidden 64, a 32k vocabulary)
# and checked on another shape (tests/models/test_plan.py): importance keeps two float32 log-softmaxes (counted) and its KL divergence's exp and
# difference and their gradients; a loss without gradients holds the logits, their shifted copy and the
# log-softmax; a multiple-choice batch the logits and their log-softmax; generation, per row, three float32 copies
# of the last position's logits (the step's output, its float copy, the processors').
IMPORTANCE_TRANSIENT = 16
NO_GRAD_LOSS = 12
CHOICE_SCORING = 8
GENERATION_VECTORS = 3 * 4


def model_bytes(arch: Architecture, dtype: str) -> int:
    return arch.params * DTYPE_BYTES[dtype]


def importance_bytes(arch: Architecture, rows: int, max_len: int, dtype: str, checkpointing: bool,
                     gpus: int = 1) -> int:
    """The importance job's memory per GPU: the weights as loaded (over ``gpus``: their shards, two layers and the root
    gathered) and one part of a batch (``rows`` inputs) through its two forward passes and the backward to the
    masks."""
    tokens, value_bytes = rows * max_len, DTYPE_BYTES[dtype]
    passes = 2 * activation_bytes(arch, tokens, "weights", value_bytes, checkpointing)
    weights = model_bytes(arch, dtype) if gpus == 1 else math.ceil(model_bytes(arch, dtype) / gpus) \
        + 2 * arch.layer_params * value_bytes + root_unit_bytes(arch, value_bytes)
    return weights + passes + tokens * arch.vocab * IMPORTANCE_TRANSIENT


def kv_cache_bytes(arch: Architecture, rows: int, length: int, dtype: str) -> int:
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * rows * length * DTYPE_BYTES[dtype]


def generation_bytes(arch: Architecture, rows: int, prompt_len: int, new_tokens: int, dtype: str) -> int:
    """Greedy generation of ``rows`` answers: the weights, the key-value cache of prompt and answer, and the last
    position's logits per row (the prompt's other positions get none)."""
    return model_bytes(arch, dtype) + kv_cache_bytes(arch, rows, prompt_len + new_tokens, dtype) \
        + rows * arch.vocab * GENERATION_VECTORS


def choice_bytes(arch: Architecture, rows: int, length: int, dtype: str) -> int:
    """Multiple-choice scoring of ``rows`` prompt + choice sequences of ``length`` tokens: the logits over every
    position and their float32 log-softmax (a half-precision model's logits get a float32 copy first)."""
    value_bytes = DTYPE_BYTES[dtype]
    per_entry = value_bytes + CHOICE_SCORING - 4 + (4 if value_bytes < 4 else 0)
    return model_bytes(arch, dtype) + rows * length * arch.vocab * per_entry


def evaluation_bytes(arch: Architecture, rows: int, prompt_len: int, new_tokens: int, dtype: str) -> int:
    """An evaluation batch on the device: the larger of generation and multiple-choice scoring."""
    return max(generation_bytes(arch, rows, prompt_len, new_tokens, dtype),
               choice_bytes(arch, rows, prompt_len + new_tokens, dtype))


def largest_tensor(arch: Architecture) -> int:
    return max(arch.vocab * arch.hidden, *(arch.projection_params(p) for p in PROJECTIONS))


@dataclass(frozen=True)
class LandscapeBytes:
    """The landscape job: on the device the weights and a loss without gradients over a fixed batch; on the host
    the starting weights and both directions where they are kept (a model whose direction is at most 256 MiB);
    between two points, each tensor's move in float32 (its weights, one part per direction, the sum) on the host and
    its copy to the device. The moves and the losses take turns: on one memory (a CPU) the peak is the larger."""

    device: int
    host: int
    moving: int

    def one_memory(self, weights: int) -> int:
        return self.host + max(self.device, weights + self.moving)


def landscape_bytes(arch: Architecture, rows: int, max_len: int, dtype: str) -> LandscapeBytes:
    tokens, value_bytes, weights = rows * max_len, DTYPE_BYTES[dtype], model_bytes(arch, dtype)
    layer = layer_activation_bytes(arch, tokens, "weights", value_bytes)  # a forward frees each layer's values
    direction = arch.params * 4
    kept = 2 * direction if direction <= 256 * 2**20 else 0
    return LandscapeBytes(device=weights + layer + tokens * arch.vocab * NO_GRAD_LOSS, host=weights + kept,
                          moving=3 * largest_tensor(arch) * 4 + largest_tensor(arch) * value_bytes)


@dataclass(frozen=True)
class Needs:
    """Bytes per GPU of one run at ``gpus`` GPUs."""

    gpus: int
    weights: int
    gradients: int
    optimizer: int
    method: int  # what the method adds (SAM's weights copy, L1/L2's start, the update mask's copy)
    activations: int
    activations_checkpointed: int
    accumulating: bool = False  # gradients of earlier micro-batches are held while the next one runs forward

    def total(self, checkpointing: bool) -> int:
        """The peak: the forward's end (activations, and the gradients accumulation holds) or the backward's end
        (every gradient, the activations freed), whichever is higher, over the weights, optimizer state and the
        method's copies."""
        activations = self.activations_checkpointed if checkpointing else self.activations
        states = self.weights + self.optimizer + self.method
        peak = max(activations + (self.gradients if self.accumulating else 0), self.gradients)
        return states + peak + int(CUDA_OVERHEAD_GIB * GIB)


def trained_params(arch: Architecture, run, module_groups: dict) -> int:
    """How many parameters ``run`` trains (a :class:`cofi.config.experiment.Run`), as its method says."""
    from cofi.methods import METHODS

    return METHODS[run.method].trained_params(arch, run.params or {}, module_groups)


def needs(arch: Architecture, run, module_groups: dict, gpus: int, max_len: int, dtype: str, precision: str,
          shards: int | None = None, accumulate_unsharded: bool = False) -> Needs:
    """The memory of ``run`` per GPU when ``gpus`` GPUs train it (1: no sharding), its weights sharded over
    ``shards`` of them (all by default; one node's under hybrid sharding). ``accumulate_unsharded``: with several
    micro-batches, every GPU also holds the whole unsharded gradient until the last one."""
    processes, gpus = gpus, shards or gpus
    model_bytes = DTYPE_BYTES[dtype]
    mixed = precision in ("bf16", "fp16")
    compute_bytes = 2 if mixed else model_bytes
    # What trains: float32 copies under mixed precision and in FSDP2's shards; else the model's dtype.
    master = max(model_bytes, 4) if mixed or gpus > 1 else model_bytes
    trained = trained_params(arch, run, module_groups)
    if not trained:  # no training, no GPU (Wise-FT: the files interpolated tensor by tensor, cofi.models.weights)
        return Needs(0, 0, 0, 0, 0, 0, 0)
    from cofi.methods import METHODS

    method = METHODS[run.method]
    if gpus > 1:  # FSDP2: shards of every weight (float32 masters of the trained ones, the frozen ones in the compute
        # dtype under mixed precision); one layer gathered at a time (two with prefetch), the root for the whole step
        frozen = arch.params - (0 if method.adds_parameters else trained)
        shards = trained * master + frozen * (compute_bytes if mixed else master)
        weights = math.ceil(shards / gpus) + 2 * arch.layer_params * compute_bytes + root_unit_bytes(arch, compute_bytes)
    else:
        frozen = arch.params - (0 if method.adds_parameters else trained)
        weights = frozen * model_bytes + trained * master
        if mixed and model_bytes > compute_bytes:  # autocast's bf16 copies of the weights, kept for the backward
            weights += (arch.params - arch.vocab * arch.hidden) * compute_bytes  # (not the embedding: a lookup)
    shard = lambda n: math.ceil(n / gpus)  # noqa: E731
    extra = 0
    if run.sam_rho:
        extra += shard(trained * master)  # the weights before the ascent
    extra += method.weight_copies(run.params or {}) * shard(trained * master)  # a penalty's start, ...
    gradients = shard(trained * master)
    if processes > 1 and accumulate_unsharded and run.train.grad_accum > 1:
        gradients += trained * master  # FSDP2 keeps each backward's unsharded gradients until it reduces
    tokens = math.ceil(run.train.batch_size / processes) * max_len  # one micro-batch per process
    mode = "autocast" if mixed and gpus == 1 and model_bytes > compute_bytes else "weights"
    loss_path = tokens * arch.vocab * LOSS_PATH_TRANSIENT
    return Needs(processes, weights, gradients, shard(2 * trained * master), extra,
                 activation_bytes(arch, tokens, mode, compute_bytes, False) + loss_path,
                 activation_bytes(arch, tokens, mode, compute_bytes, True) + loss_path, run.train.grad_accum > 1)


def shard_count(gpus: int, gpus_per_node: int, mesh: str) -> int:
    """Over how many of ``gpus`` GPUs a run's weights are sharded: all of them (flat), or one node's (hybrid:
    replicas across nodes, so a GPU never holds less than its share of one node)."""
    return gpus if mesh == "flat" else min(gpus, gpus_per_node)


def needs_on_mesh(arch, run, module_groups, gpus, max_len, dtype, precision, gpu_memory_gib: float,
                  checkpointing: bool, gpus_per_node: int, sharding: str,
                  accumulate_unsharded: bool = False) -> tuple[str, Needs]:
    """``compute.sharding`` resolved at ``gpus`` GPUs, and the run's needs on that mesh: flat or hybrid as set; auto
    takes hybrid where the run fits one node's GPUs, else flat."""
    mesh = "hybrid" if sharding == "auto" else sharding
    planned = needs(arch, run, module_groups, gpus, max_len, dtype, precision, shard_count(gpus, gpus_per_node, mesh),
                    accumulate_unsharded)
    if sharding == "auto" and planned.total(checkpointing) > gpu_memory_gib * GIB:
        mesh = "flat"
        planned = needs(arch, run, module_groups, gpus, max_len, dtype, precision, gpus, accumulate_unsharded)
    return mesh, planned


def mesh_for(*args, **kwargs) -> str:
    """The mesh of :func:`needs_on_mesh` alone (what a starting job asks)."""
    return needs_on_mesh(*args, **kwargs)[0]


def smallest_fit(arch, run, module_groups, max_len, dtype, precision, gpu_memory_gib: float, checkpointing: bool,
                 gpus_per_node: int = 8, sharding: str = "flat", accumulate_unsharded: bool = False,
                 most: int = 4096) -> int | None:
    """The fewest GPUs (1, 2, 4, …) whose per-GPU memory holds the run under ``sharding``, or None."""
    gpus = 1
    while gpus <= most:
        _, planned = needs_on_mesh(arch, run, module_groups, gpus, max_len, dtype, precision, gpu_memory_gib,
                                   checkpointing, gpus_per_node, sharding, accumulate_unsharded)
        if planned.total(checkpointing) <= gpu_memory_gib * GIB:
            return gpus
        gpus *= 2
    return None


def plan_table(experiment, arch: Architecture, gpus: int, gpu_memory_gib: float, gpus_per_node: int):
    """One row per run: memory per GPU at ``gpus`` GPUs, whether it fits, and what it needs."""
    import pandas as pd

    rows = []
    runs = dict(experiment.runs)
    if experiment.search.enabled:  # the first depth's largest candidate (trained like the reference)
        from cofi.search.policy import first_candidates

        search = experiment.search
        candidates = [experiment.candidates.run(c["region"], search.reference_lr)
                      for c in first_candidates(search.policy, arch.layers)]
        runs["search candidates"] = max(candidates, key=lambda r: trained_params(arch, r, experiment.module_groups))
    compute = experiment.compute
    for name, run in runs.items():
        if not trained_params(arch, run, experiment.module_groups):
            rows.append({"run": name, "method": run.method, "gpus": 0, "needs": "no GPU (host memory: one shard of the output)"})
            continue
        mesh, n = needs_on_mesh(arch, run, experiment.module_groups, gpus, experiment.prompt.max_len,
                                experiment.model.dtype, compute.precision, gpu_memory_gib, compute.gradient_checkpointing,
                                gpus_per_node, compute.sharding, compute.accumulate_unsharded)
        row = {"run": name, "method": run.method, "gpus": gpus,
               "mesh": "-" if gpus == 1 else mesh if gpus > gpus_per_node else "one node", "weights": n.weights / GIB, "gradients": n.gradients / GIB,
               "optimizer": n.optimizer / GIB, "method extra": n.method / GIB, "activations": n.activations / GIB,
               "activations (ckpt)": n.activations_checkpointed / GIB, "total": n.total(False) / GIB,
               "total (ckpt)": n.total(True) / GIB}
        for checkpointing, key in ((False, "fits"), (True, "fits (ckpt)")):
            row[key] = "yes" if n.total(checkpointing) <= gpu_memory_gib * GIB else "no"
        fewest = smallest_fit(arch, run, experiment.module_groups, experiment.prompt.max_len, experiment.model.dtype,
                              compute.precision, gpu_memory_gib, compute.gradient_checkpointing, gpus_per_node,
                              compute.sharding, compute.accumulate_unsharded)
        row["needs"] = ("no GPU count (hybrid sharding: set compute.sharding flat or auto)" if compute.sharding == "hybrid"
                        else "more than 4096 GPUs") if fewest is None else (
            f"{fewest} GPU{'s' if fewest > 1 else ''}" + (f" ({math.ceil(fewest / gpus_per_node)} nodes)"
                                                          if fewest > gpus_per_node else ""))
        rows.append(row)
    return pd.DataFrame(rows)


ANSWER_TOKENS = 96  # the longest answers cofi generates (instruction following's); references set the others'


def analysis_table(experiment, arch: Architecture, gpu_memory_gib: float):
    """The jobs beside training, each on one GPU at the config's batch sizes: GiB on the device (and on the host
    where it holds more than a few tensors), and whether they fit."""
    import pandas as pd

    dtype, length = experiment.model.dtype, experiment.prompt.max_len
    importance = experiment.importance
    rows = importance.micro_batch_size or importance.batch_size
    scape = landscape_bytes(arch, experiment.landscape.batch_size, length, dtype)
    batch = experiment.evaluation.batch_size
    jobs = [
        ("importance", f"{rows} inputs", importance_bytes(arch, rows, length, dtype,
                                                          experiment.compute.gradient_checkpointing), None),
        ("landscape", f"{experiment.landscape.batch_size} examples", scape.device, scape.host + scape.moving),
        ("evaluation: generation", f"{batch} prompts", generation_bytes(arch, batch, length, ANSWER_TOKENS, dtype), None),
        ("evaluation: multiple choice", f"{batch} prompts", choice_bytes(arch, batch, length, dtype), None),
        ("Wise-FT", "-", 0, min(5 * GIB, model_bytes(arch, dtype)) + 2 * largest_tensor(arch) * 4),
    ]
    rows_out = []
    for job, size, device, host in jobs:
        planned = device + (int(CUDA_OVERHEAD_GIB * GIB) if device else 0)
        rows_out.append({"job": job, "batch": size, "GPU GiB": f"{planned / GIB:.1f}" if device else "no GPU",
                         "host GiB": f"{host / GIB:.1f}" if host is not None else "-",
                         "fits one GPU": ("yes" if planned <= gpu_memory_gib * GIB else "no") if device else "-"})
    return pd.DataFrame(rows_out)
