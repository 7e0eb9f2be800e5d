"""Models and tokenizers: load a user's causal LM directory, or build the embedded one.

Every rule loads models through :func:`load_model`, so the embedded default and a user's
checkpoint take the same code path (``AutoModelForCausalLM`` / ``AutoTokenizer`` on a local dir).
"""

from __future__ import annotations

from cofi.errors import InputError
from cofi.data.world import SPECIAL_TOKENS
from cofi.models.layers import LAYOUT

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


class ModelError(InputError):
    """A model path that cannot serve as a causal LM; the message names the path."""


def build_word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer made with ``tokenizers``, wrapped for ``transformers``."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)


def llama_config(vocab_size: int, arch: dict) -> LlamaConfig:
    """A Llama of ``arch``: layers, hidden, intermediate, heads, max_len, and kv_heads (default: heads)."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=arch["hidden"],
        intermediate_size=arch["intermediate"],
        num_hidden_layers=arch["layers"],
        num_attention_heads=arch["heads"],
        num_key_value_heads=arch.get("kv_heads", arch["heads"]),
        max_position_embeddings=arch["max_len"],
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def build_llama(vocab_size: int, arch: dict, seed: int) -> LlamaForCausalLM:
    """A small randomly initialised Llama (see :func:`llama_config`)."""
    config = llama_config(vocab_size, arch)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


# Files a Hugging Face model directory holds its weights in (each may be sharded under an index) and its tokenizer in.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def _check_weights_and_tokenizer(path: Path) -> None:
    """Weights (whole, or every shard an index names) and a tokenizer are there; nothing is read but the index."""
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            break
        index = path / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, AttributeError) as error:
                raise ModelError(f"model.path {str(path)!r}: {index.name} cannot be read ({error!r})") from None
            if missing := [shard for shard in shards if not (path / shard).is_file()]:
                raise ModelError(f"model.path {str(path)!r}: {index.name} names {len(missing)} shard(s) that are "
                                 f"missing: {', '.join(missing[:3])}")
            break
    else:
        raise ModelError(f"model.path {str(path)!r}: no weights (expected model.safetensors, a "
                         "model.safetensors.index.json and its shards, or pytorch_model.bin)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"model.path {str(path)!r}: no tokenizer (expected tokenizer.json, tokenizer.model or "
                         "vocab.json beside config.json; write it with tokenizer.save_pretrained)")


def check_model_dir(path: str | Path, trust_remote_code: bool = False) -> None:
    """Fail fast, without loading weights, unless ``path`` holds a causal LM's config, weights and tokenizer."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"model.path {str(path)!r}: no such directory (expected a Hugging Face model directory)")
    if not (path / "config.json").is_file():
        raise ModelError(f"model.path {str(path)!r}: no config.json (expected a Hugging Face model directory)")
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except (ValueError, OSError, json.JSONDecodeError) as error:
        raise ModelError(f"model.path {str(path)!r}: config.json cannot be read: {error}") from None
    remote_causal = trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not remote_causal:
        raise ModelError(
            f"model.path {str(path)!r}: model_type {config.model_type!r} is not a causal language model "
            "(expected one AutoModelForCausalLM can load, e.g. llama, mistral, qwen2)"
        )
    _check_weights_and_tokenizer(path)




def model_depth(path: str | Path, trust_remote_code: bool = False) -> int:
    """Decoder layers of the model in ``path``, from its config.json (after :func:`check_model_dir`)."""
    check_model_dir(path, trust_remote_code)
    return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True).num_hidden_layers


def decoder_projections(path: str | Path, trust_remote_code: bool = False) -> set[str]:
    """Names of the Linear modules in the decoder layers (q_proj, ...), read from a weightless copy of the
    model (meta device: nothing loaded or allocated). A model whose decoder layers are not where regions,
    importance and soft masks look for them is refused."""
    model_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust_remote_code)
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and ".layers." in name}
    if not names:
        stacks = [name for name, module in model.named_modules() if isinstance(module, torch.nn.ModuleList)]
        where = f"at {stacks[0]}.0, {stacks[0]}.1, …" if stacks else "in no module list"
        raise ModelError(f"model.path {str(path)!r}: cofi needs {LAYOUT}; {type(model).__name__} keeps its "
                         f"decoder layers {where}")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: this process's GPU if one is visible (under ``torchrun``, the one of its local
    rank), else the CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given, checked to exist."""
    import os

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r}: no CUDA device is visible here (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type != "cpu":
        raise InputError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def load_model(path: str | Path, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu",
               spread: bool = False):
    """Load ``(model, tokenizer)`` from a local directory onto ``device`` (see :func:`resolve_device`);
    a pad token is added if missing. ``spread`` (inference only): a model too big for the GPU is spread over
    every visible GPU by accelerate's big-model inference (``device_map="auto"``)."""
    check_model_dir(path, trust_remote_code)
    device = resolve_device(device)
    hf_logging.disable_progress_bar()  # per-shard bars would flood the rule logs
    tokenizer = load_tokenizer(path, trust_remote_code)
    device_map = None if device.type == "cpu" else {"": device}  # straight onto the GPU, no CPU copy
    if spread and device.type == "cuda" and torch.cuda.device_count() > 1:
        from cofi.models.weights import stored_bytes

        if spreads(stored_bytes(path, DTYPES[dtype]), torch.cuda.mem_get_info(device)[0], torch.cuda.device_count()):
            device_map = "auto"
    model = AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=trust_remote_code, dtype=DTYPES[dtype], local_files_only=True, device_map=device_map)
    return model, tokenizer


def skeleton(path: str | Path, dtype: torch.dtype, trust_remote_code: bool = False):
    """The model of ``path`` without weights (meta device): what a sharded job's processes build before their shards
    are filled (:func:`cofi.training.sharding.broadcast_full_state`)."""
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code, dtype=dtype)


def spreads(model_bytes: int, free_gpu_bytes: int, gpus: int, room: float = 0.8) -> bool:
    """Whether inference spreads the model over the GPUs: it would take more than ``room`` of one GPU's free memory
    (the rest is for activations and the generation cache), and there is more than one."""
    return gpus > 1 and model_bytes > room * free_gpu_bytes


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer of a model directory; a pad token is added if missing (the EOS token)."""
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def save_model(model, tokenizer, out_dir: str | Path) -> None:
    """Weights as safetensors plus the tokenizer, loadable by :func:`load_model`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
