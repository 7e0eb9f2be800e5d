"""GGUF files (llama.cpp, ollama) as Hugging Face model directories.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=name)``, with the ``gguf`` package)
and dequantizes it; the model it gives is marked as quantized and cannot be saved as it is. Its
weights, put into a fresh model of the same config, are written as an ordinary safetensors directory
with the GGUF's tokenizer and chat template, which every job then loads through
:func:`cofi.models.loading.load_model` like any checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from cofi.models.loading import ModelError

# GGUF architectures cofi imports: those whose decoder layers have the Llama layout cofi's regions,
# importance and soft masks work on (transformers maps them to LlamaForCausalLM).
LLAMA_FAMILY = ("llama",)
IMPORT_RECORD = "cofi_import.json"


class GGUFError(ModelError):
    """A GGUF file that cannot be read or is not of the Llama family; the message names the file."""


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_header(path: str | Path, key: str = "model.gguf") -> dict:
    """Architecture, decoder layers and name from the file's header (memory-mapped: no weights read)."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{key} {str(path)!r}: no such file (expected a .gguf model file)")
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, KeyError) as error:
        raise GGUFError(f"{key} {str(path)!r}: not a readable GGUF file ({error})") from None
    architecture = _field(reader, "general.architecture")
    return {"architecture": architecture, "name": _field(reader, "general.name"),
            "layers": _field(reader, f"{architecture}.block_count"),
            "chat_template": _field(reader, "tokenizer.chat_template") is not None}


def architecture_keys(path: str | Path, key: str = "model.gguf") -> dict:
    """The config.json keys of the model's shape, from the header and the tensor names (memory-mapped: no weights
    read), for planning before the import."""
    from gguf import GGUFReader

    check_gguf(path, key)
    reader = GGUFReader(Path(path))
    arch = _field(reader, "general.architecture")
    heads = _field(reader, f"{arch}.attention.head_count")
    vocab = _field(reader, f"{arch}.vocab_size") or len(reader.fields["tokenizer.ggml.tokens"].data)
    return {"hidden_size": _field(reader, f"{arch}.embedding_length"),
            "intermediate_size": _field(reader, f"{arch}.feed_forward_length"),
            "num_hidden_layers": _field(reader, f"{arch}.block_count"), "num_attention_heads": heads,
            "num_key_value_heads": _field(reader, f"{arch}.attention.head_count_kv") or heads, "vocab_size": vocab,
            "tie_word_embeddings": not any(tensor.name == "output.weight" for tensor in reader.tensors)}


def check_gguf(path: str | Path, key: str = "model.gguf") -> dict:
    """The header of a GGUF file cofi can import; else :class:`GGUFError` naming ``key`` and the file."""
    header = read_header(path, key)
    if header["architecture"] not in LLAMA_FAMILY:
        raise GGUFError(f"{key} {str(path)!r}: architecture {header['architecture']!r} is not of the Llama family "
                        f"(cofi imports {', '.join(LLAMA_FAMILY)}: decoder layers with q/k/v/o and gate/up/down "
                        "projections); convert the model to a Hugging Face directory and set model.path instead")
    if not isinstance(header["layers"], int) or header["layers"] < 1:
        raise GGUFError(f"{key} {str(path)!r}: the header has no {header['architecture']}.block_count")
    return header


def _stamp(path: Path) -> dict:
    stat = path.stat()
    return {"gguf": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def checked_header(path: str | Path, imported: str | Path, key: str = "model.gguf") -> dict:
    """:func:`check_gguf`, or the header its import recorded when ``imported`` holds the import of this very
    file (same path, size and mtime): reading a real GGUF's header parses its whole vocabulary (seconds)."""
    path, record = Path(path), Path(imported) / IMPORT_RECORD
    if path.is_file() and record.is_file():
        try:
            recorded = json.loads(record.read_text())
        except ValueError:
            recorded = {}
        if all(recorded.get(k) == v for k, v in _stamp(path).items()):
            return {k: recorded[k] for k in ("architecture", "name", "layers", "chat_template")}
    return check_gguf(path, key)


def import_gguf(path: str | Path, out_dir: str | Path, dtype: str = "float32", log=print) -> dict:
    """Write the GGUF model at ``path`` as a Hugging Face directory ``out_dir``; returns the import record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from cofi.models.loading import DTYPES, save_model

    path, out_dir = Path(path), Path(out_dir)
    header = check_gguf(path, "--gguf")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise GGUFError(f"--out {str(out_dir)!r}: exists and is not empty (nothing is overwritten; remove it first)")
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[dtype])
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized: the saved model is an ordinary one
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()  # tied embeddings share one tensor again, as in the GGUF
    model.generation_config = loaded.generation_config
    save_model(model, tokenizer, out_dir)
    record = {**_stamp(path), **header, "dtype": dtype,
              "parameters": sum(p.numel() for p in model.parameters()), "model_type": config.model_type}
    (Path(out_dir) / IMPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    log(f"imported {path.name} ({header['architecture']}, {header['layers']} layers, "
        f"{record['parameters'] / 1e6:.1f} M parameters) to {out_dir}")
    return record
