"""Typed settings (pure): each dataclass here is the one home of its keys, defaults, bounds and help.

The config schema's fragments for these sections (``workflow/schemas/config.schema.yaml`` leaves them
to :func:`cofi.config.checks.load_schema`), the keys a run may set and the command-line help all come from
the dataclass, so a default is written once. A field is declared with :func:`setting`: its default,
one line of help, and JSON-schema bounds (``minimum=1``, ...). The JSON type follows the annotation.
"""

from __future__ import annotations

import dataclasses
import keyword
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from cofi.errors import InputError


class SettingsError(InputError):
    """Settings that do not fit together or name unknown keys; the message says where."""


def setting(default, help: str, *, sweep: bool = False, **bounds):
    """A settings field: ``default``, ``help`` text, JSON-schema ``bounds``; ``sweep``: a list gives a run per value."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds, "sweep": sweep})


def _json_type(annotation) -> dict:
    """The JSON-schema type of an annotation: int, float, bool, str, Literal, tuple[X, ...], X | None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [_json_type(a) for a in args if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"unsupported union {annotation}")
        kind = dict(kinds[0])
        if "enum" in kind:
            return {**kind, "enum": [*kind["enum"], None]}
        return {**kind, "type": [kind["type"], "null"]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": _json_type(args[0])}
    if annotation is Mapping or origin is Mapping:  # an ordered mapping of names to text (YAML keeps its order)
        return {"type": "object", "additionalProperties": {"type": "string"}}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation in simple:
        return {"type": simple[annotation]}
    raise TypeError(f"unsupported settings type {annotation}")


def _json_value(value):
    if isinstance(value, Mapping):
        return dict(value)
    return list(value) if isinstance(value, tuple) else value


def key_of(field: dataclasses.Field) -> str:
    """A field's config key: its name, less the trailing ``_`` of a name that would be a Python keyword
    (``lambda_`` is the key ``lambda``)."""
    name = field.name
    return name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name


def fields_of(cls) -> list[tuple[dataclasses.Field, object]]:
    """The settings fields of ``cls`` with their resolved annotations."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if "help" in f.metadata]


def schema_fragment(cls, *, defaults: bool = True) -> dict:
    """The JSON-schema object for ``cls``: each field's type, bounds, help and (with ``defaults``) default."""
    properties = {}
    for field, annotation in fields_of(cls):
        prop = {**_json_type(annotation), **field.metadata["bounds"], "description": field.metadata["help"]}
        if defaults:
            prop["default"] = _json_value(field.default)
        properties[key_of(field)] = prop
    return {"type": "object", "additionalProperties": False, "default": {}, "properties": properties}


def sweepable(cls) -> tuple[str, ...]:
    return tuple(key_of(f) for f, _ in fields_of(cls) if f.metadata["sweep"])


def help_lines(cls) -> list[str]:
    """``key = default: help`` for each field (the `methods` command, the docs)."""
    return [f"{key_of(f)} = {_json_value(f.default)!r}: {f.metadata['help']}" for f, _ in fields_of(cls)]


def from_dict(cls, values: dict | None, where: str = ""):
    """``cls`` from a mapping of its keys; an unknown key is an error (it would be dropped silently)."""
    values = dict(values or {})
    names = {key_of(f): f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(values) - set(names)):
        raise SettingsError(f"{where or cls.__name__}: unknown key(s) {unknown} (known: {', '.join(sorted(names))})")
    kinds = {f.name: annotation for f, annotation in fields_of(cls)}
    typed = {}
    for key, value in values.items():
        name = names[key]
        typed[name] = tuple(value) if typing.get_origin(kinds.get(name)) is tuple and isinstance(value, list) else value
    return cls(**typed)


def to_dict(settings) -> dict:
    return {key_of(field): _json_value(getattr(settings, field.name)) for field in dataclasses.fields(settings)}


def non_default(settings) -> dict:
    """The keys of ``settings`` that differ from their defaults (a new setting left at its default then
    changes no job's command line, so it reruns nothing)."""
    return {key_of(field): _json_value(getattr(settings, field.name)) for field, _ in fields_of(type(settings))
            if getattr(settings, field.name) != field.default}


@dataclass(frozen=True)
class Optimisation:
    """AdamW, linear warm-up then cosine decay, response-only loss: what every training here is."""

    lr: float = setting(3e-4, "AdamW's peak learning rate", sweep=True, exclusiveMinimum=0)
    steps: int = setting(200, "optimizer steps", minimum=1)
    batch_size: int = setting(32, "examples per micro-batch (the global one: processes split it)", minimum=1)
    grad_accum: int = setting(1, "micro-batches per optimizer step", minimum=1)
    warmup_ratio: float = setting(0.05, "share of the steps spent warming up", minimum=0, maximum=1)
    weight_decay: float = setting(0.0, "AdamW's weight decay", minimum=0)
    max_grad_norm: float = setting(1.0, "clip the global gradient norm to this (0: no clipping)", minimum=0)
    log_every: int = setting(25, "a progress line in the log every N steps", minimum=1)


@dataclass(frozen=True)
class TrainSettings(Optimisation):
    """What a run's training is: its optimisation, and the forgetting it watches for (cofi.training.forgetting)."""

    kl_every: int = setting(0, "every N steps, KL(base || model) on the task's held-out prompts and the change in "
                            "cross-entropy on a versatility sample, into loss.csv (0: never)", minimum=0)
    kl_items: int = setting(32, "examples in each of the two samples kl_every measures (the first of the task's "
                            "validation file; the versatility suites' validation files in turn)", minimum=1)
    max_kl: float | None = setting(None, "a forgetting budget: where the KL passes it, the run stops and keeps its "
                                   "weights of the last measurement under it (needs kl_every); null: no budget",
                                   sweep=True, exclusiveMinimum=0)

    # Written into a run's spec only when set: a run that does not watch keeps the spec (and the outputs) it had.
    OMITTED_AT_DEFAULT: typing.ClassVar[tuple[str, ...]] = ("kl_every", "kl_items", "max_kl")

    def spec(self) -> dict:
        """The run's training keys as its spec holds them."""
        return {key: value for key, value in to_dict(self).items()
                if key not in self.OMITTED_AT_DEFAULT or value != getattr(TrainSettings, key)}


@dataclass(frozen=True)
class BaseTrainSettings(Optimisation):
    """The embedded base model's training on the versatility mixture: a run's keys, with the defaults that
    align it (every key defaults on its own: setting one keeps the others')."""

    lr: float = setting(2e-3, "AdamW's peak learning rate", exclusiveMinimum=0)
    steps: int = setting(600, "optimizer steps", minimum=1)
    batch_size: int = setting(128, "examples per batch", minimum=1)
    log_every: int = setting(50, "a progress line in the log every N steps", minimum=1)


@dataclass(frozen=True)
class ComputeSettings:
    """How jobs compute, not what a run is: changing these never changes a run's identity."""

    device: str = setting("auto", "auto (the GPU if one is visible, else the CPU), cpu, cuda or cuda:N; under torchrun "
                          "each process takes its local rank's GPU", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    precision: typing.Literal["fp32", "bf16", "fp16"] = setting(
        "fp32", "autocast in training and evaluation; bf16/fp16 keep float32 copies of the trained weights, fp16 "
        "scales the loss (not with SAM); bf16 runs CPU jobs on the CPU's native kernels, not the pinned AVX2 ones "
        "(those emulate bf16), so its results follow the machine")
    gradient_checkpointing: bool = setting(False, "recompute activations in backward: less memory, about a third more time")
    tensorboard: bool = setting(False, "also write each step's loss, lr and penalty as TensorBoard event files in the "
                                "run's tensorboard/ directory (needs the tensorboard package)")
    sharding: typing.Literal["auto", "flat", "hybrid"] = setting(
        "auto", "a sharded job across nodes: flat shards every weight over every GPU of every node; hybrid shards "
        "within a node and replicates across nodes (less traffic between nodes, but a GPU holds a node's share of the "
        "model); auto takes hybrid where cofi's plan says the run fits one node's GPUs and flat where it does not")
    accumulate_unsharded: bool = setting(
        False, "sharded training with grad_accum > 1: reduce-scatter the gradients once, after the last micro-batch "
        "(fewer collectives, but every GPU holds the unsharded gradient of every trained weight until then: about "
        "25 GiB at 7B); by default every micro-batch reduce-scatters and a GPU holds only its shards' gradients")
    checkpoint_every: int = setting(0, "a resumable training checkpoint every N optimizer steps (0: none); a rerun job "
                                    "resumes from the latest", minimum=0)

    @property
    def cpu_kernels(self) -> str:
        """The CPU kernels jobs compute on (:mod:`cofi.models.kernels`): pinned to AVX2 for results that do not follow
        the machine, or the CPU's native ones where bf16 needs its instructions."""
        return "native" if self.precision == "bf16" else "pinned"

    def check_run(self, uses_sam: bool, where: str) -> None:
        """What a run may not combine with these settings (:class:`SettingsError` naming ``where``)."""
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise SettingsError("config key compute.tensorboard: the tensorboard package is not installed "
                                    "(pip install 'cofi[tensorboard]', or set it false)")
        if self.precision == "fp16" and uses_sam:
            raise SettingsError(f"{where}: fp16 cannot train with SAM (the loss scaler and SAM's ascent do not mix); "
                             "use bf16")


@dataclass(frozen=True)
class ClusterSettings:
    """What a GPU and a node of the cluster are, as the site layer says (cofi.models.cluster turns them and cofi's plan into
    each job's request); never part of a run's identity."""

    gpus_per_node: int | None = setting(
        None, "GPUs per node; null: jobs request no GPUs (a workstation); 0: a CPU cluster. Set it in the site layer: "
        "each training job then asks for the GPUs, nodes, memory and runtime cofi's plan gives its run", minimum=0)
    gpu_memory_gib: float = setting(80.0, "memory of one GPU, GiB", exclusiveMinimum=0)
    gpu_model: str | None = setting(None, "SLURM's name of the GPU model (--gpus=MODEL:N); null: any model",
                                    pattern=r"^[A-Za-z0-9_.]+$")
    gpu_tflops: float | None = setting(
        None, "dense bf16 peak TFLOP/s of one GPU, for runtimes; null: the data sheet's for a known gpu_model (a100, "
        "h100, h200, l40s, ...), else 312", exclusiveMinimum=0)
    cpus_per_gpu: int = setting(8, "CPUs a GPU job reserves per GPU", minimum=1)
    node_memory_gib: float | None = setting(None, "host memory a job may take on one node, GiB; a run whose plan "
                                            "needs more stops the workflow before it starts; null: unchecked",
                                            exclusiveMinimum=0)

    @property
    def has_gpus(self) -> bool:
        return bool(self.gpus_per_node)


@dataclass(frozen=True)
class PromptSettings:
    """How a record becomes tokens (cofi.data.prompts)."""

    template: str = setting("{instruction} {input} =", "Python format string with {instruction} and {input}")
    chat_template: bool = setting(False, "build prompts with the tokenizer's own chat template (one user turn: "
                                  "instruction, a blank line, input; or a conversation record's turns; the generation "
                                  "prompt on); template is then unused")
    mask_prompt: bool = setting(True, "loss on the response tokens only")
    max_len: int = setting(32, "tokens per training example (longer ones are cut from the right)", minimum=1)
    system: str | None = setting(None, "with chat_template: the system turn's text, in place of a conversation "
                                 "record's own (\"\": an empty one, the shortest the template allows); null: the "
                                 "record's own, else the template's default")


@dataclass(frozen=True)
class ModelSettings:
    """Which model every job loads, and how."""

    path: str | None = setting(None, "local Hugging Face causal LM directory, or a hub id owner/name[@revision] (the "
                               "snapshot from the local hub cache, linked into results/<experiment>/base_model; "
                               "python -m cofi fetch-model fetches it); null builds the embedded base model",
                               format="path")
    gguf: str | None = setting(None, "a GGUF model file (llama.cpp, ollama) of the Llama family, imported once as a "
                               "Hugging Face directory under results/<experiment>/base_model (instead of path)",
                               format="path")
    trust_remote_code: bool = setting(False, "run the model's own Python code (off unless you say so)")
    dtype: typing.Literal["float32", "bfloat16", "float16", "float64"] = setting(
        "float32", "dtype the weights are loaded in (float64 for exactness checks)")


@dataclass(frozen=True)
class ImportanceSettings:
    """Unit importance for the soft-mask methods, estimated once on the base model (cofi.methods.cofitune.importance)."""

    source: typing.Literal["speciality", "versatility"] = setting(
        "speciality", "unlabeled inputs of the task's training data, or a versatility set")
    versatility_data: str | None = setting(
        None, "JSONL for source versatility; null - the embedded world's versatility training mixture", format="path")
    dropout: float = setting(0.003, "dropout on attention probabilities and MLP outputs of the two passes",
                             exclusiveMinimum=0, exclusiveMaximum=1)
    batches: int = setting(16, "batches of inputs at most (a seeded sample)", minimum=1)
    batch_size: int = setting(32, "inputs per batch", minimum=1)
    micro_batch_size: int | None = setting(
        None, "run each batch in parts of this many inputs (for models whose two passes do not fit at once; each part "
        "draws its dropout from its own seed, so other draws than the whole batch's); null - the whole batch, or over "
        "several processes batch_size / processes each", minimum=1)
    signed: bool = setting(False, "sum signed mask gradients (official code) instead of absolute values (DAS)")
    seed: int = setting(0, "seed of the sample and the dropout", minimum=0)


@dataclass(frozen=True)
class LandscapeSettings:
    """Loss landscapes and sharpness of chosen runs (cofi.analysis.landscape)."""

    runs: tuple[str, ...] = setting(
        (), "base and configured runs (or sweep variants) to probe; [] (the default) turns landscapes off")
    seed: int | None = setting(None, "the seed whose models are probed (null - the first of seeds)", minimum=0)
    batch_size: int = setting(64, "examples in each fixed batch (speciality; versatility)", minimum=1)
    span: float = setting(0.5, "grid over [-span, span] along each direction", exclusiveMinimum=0)
    points_1d: int = setting(31, "odd, so the centre is on the grid", minimum=3)
    points_2d: int = setting(15, "odd; per axis (points_2d^2 evaluations)", minimum=3)
    radius: float = setting(0.25, "the largest loss rise is taken within this radius", exclusiveMinimum=0)
    direction_seed: int = setting(0, "seed of the two random directions (the same draw for every model)", minimum=0)
    data_seed: int = setting(0, "which examples make the fixed batches", minimum=0)


@dataclass(frozen=True)
class RealignSettings:
    """The realignment probe (spurious forgetting): each chosen run's models, and the base model alike, trained a few
    steps on a handful of versatility examples, then scored again (cofi.analysis.realign)."""

    runs: tuple[str, ...] = setting(
        (), "configured runs (or sweep variants) to probe, at every seed; the base model is probed alike as the "
            "control; [] (the default) turns the probe off")
    examples: int = setting(8, "versatility examples trained on: the first of each suite's validation file, in turn "
                               "(a multiple-choice item with its right choice as the response)", minimum=1)
    steps: int = setting(10, "optimizer steps on them (every weight trained, AdamW, no warm-up)", minimum=1)
    lr: float | None = setting(None, "learning rate (null - training.lr)", exclusiveMinimum=0)


@dataclass(frozen=True)
class TablesSettings:
    """How the result tables read; changing these rebuilds the tables and plots only, never a run."""

    reference: str | None = setting(
        None, "run (or a sweep's tuned row, e.g. sft_tuned) the normalised view compares to; null - search.reference")
    digits: int = setting(1, "decimals shown", minimum=0, maximum=4)
    interval: bool = setting(True, "each value's 95 % interval [low, high]: a bootstrap over seeds, then items")
    show_std: bool = setting(False, "± the standard deviation over seeds beside each mean")
    bold_best: bool = setting(True, "mark the best fine-tuned value of each column")
    labels: Mapping[str, str] | None = setting(None, "{row: label} for the LaTeX tables: only these rows, in this "
                                               "order, under these names (null: every row by its name)")
    bootstrap: int = setting(2000, "bootstrap replicates of every interval", minimum=100)
    bootstrap_seed: int = setting(0, "the bootstrap's seed (the same tables every time)", minimum=0)


@dataclass(frozen=True)
class EvaluationSettings:
    """How models are scored (the decoding keys of ``generation`` are the model's generation_config's)."""

    batch_size: int = setting(128, "items per evaluation batch", minimum=1)
    max_items: int | None = setting(None, "score at most this many items per suite (the first ones); null scores all",
                                    minimum=1)
    lora: typing.Literal["merged", "adapter"] = setting(
        "merged", "how LoRA runs are scored: merged (the weights with the adapter folded in, as every other run) or "
        "adapter (the base model with the run's adapter unmerged, through peft; with backend vllm, vLLM's LoRA), as "
        "adapters are served")
    backend: typing.Literal["hf", "vllm"] = setting(
        "hf", "hf: Hugging Face transformers (generate, log-likelihoods) on the job's device; vllm: every suite through "
        "lm-evaluation-harness on vLLM (JSONL suites as harness tasks scored by cofi's metrics), tensor-parallel over "
        "the job's GPUs; needs vllm installed and a GPU")


@dataclass(frozen=True)
class ThreadsSettings:
    """Threads per job (torch threads = the rule's threads)."""

    base: int = setting(2, "build_base and import_gguf", minimum=1)
    finetune: int = setting(1, "finetune and realign (per process)", minimum=1)
    evaluate: int = setting(1, "evaluate_base, evaluate_run, evaluate_sweep, evaluate_model, evaluate_realigned, landscape",
                            minimum=1)
    importance: int = setting(1, "importance, and matrix_snr (search.mode snr)", minimum=1)


AUTO = "auto"  # a claims row found from the runs (cofi.config.claim_rows)


@dataclass(frozen=True)
class ClaimRows:
    """Which table rows the claims read (the config's ``claims`` section; cofi.analysis.claims). ``auto`` finds the
    row from the runs (:mod:`cofi.config.claim_rows`); a name reads that row; null leaves its claims untested."""

    cofitune: str | None = setting(AUTO, "the row that stands for CoFiTune (auto: the run of method cofitune, the "
                                   "paper's recipe first, a sweep by its tuned row; else the search's pick)")
    full: str | None = setting(AUTO, "Full SFT at the shared lr (auto: the search's reference)")
    full_tuned: str | None = setting(AUTO, "Full SFT at its validation-tuned lr (auto: the tuned row of the "
                                     "reference's sweep, else of the first sweep of method full)")
    sam: str | None = setting(AUTO, "SAM (auto: a run of method full with sam)")
    equal_compute: str | None = setting(AUTO, "AdamW with SAM's compute, twice the steps (auto: a run of method "
                                        "full with equal_compute)")
    old_data: tuple[str, ...] = setting((), "rows that train on old (versatility) data, left out of 'best Uni without "
                                            "old data', besides every run of a method that does (replay); a sweep "
                                            "names all its rows")
    sharpness: str = setting("spec_rise_1d", "the sharpness figure (column of sharpness.csv) of the flatness claim")
    own_rows: tuple[str, ...] = setting((), "CoFiTune's own rows, not its rivals in 'best Uni' (the workflow adds the "
                                            "coarse pick and every run of CoFiTune's method)")
