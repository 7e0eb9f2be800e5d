"""A model directory's weights tensor by tensor, without loading the model: for jobs that combine whole
checkpoints (Wise-FT) at sizes where two models do not fit in memory.

Reading maps the files (safetensors' ``safe_open``; a ``pytorch_model.bin`` through ``torch.load(mmap=True,
weights_only=True)``), so a tensor costs memory only once it is taken. Writing cuts the tensors into shards
of at most ``max_shard_bytes`` in Hugging Face's layout (``model.safetensors``, or
``model-0000i-of-0000n.safetensors`` and ``model.safetensors.index.json``), which ``from_pretrained`` reads.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cofi.models.loading import ModelError

MAX_SHARD_BYTES = 5 * 2**30  # transformers' own default shard size


class StoredWeights:
    """The tensors of one model directory: names, shapes and dtypes without reading them; a tensor on demand."""

    def __init__(self, path: Path, files: dict[str, object]):
        self.path, self._files = path, files  # tensor name -> an open safetensors file, or a mapped state dict

    def names(self) -> list[str]:
        return list(self._files)

    def tensor(self, name: str) -> torch.Tensor:
        source = self._files[name]
        return source[name] if isinstance(source, dict) else source.get_tensor(name)

    def shape_and_dtype(self, name: str) -> tuple[tuple[int, ...], torch.dtype]:
        source = self._files[name]
        if isinstance(source, dict):
            return tuple(source[name].shape), source[name].dtype
        part = source.get_slice(name)
        return tuple(part.get_shape()), _SAFETENSORS_DTYPES[part.get_dtype()]


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


@contextmanager
def stored_weights(path: str | Path) -> Iterator[StoredWeights]:
    """The weights of the model directory ``path`` (one file, or the shards its index names), mapped, not read."""
    path = Path(path)
    with ExitStack() as stack:
        files: dict[str, object] = {}
        if (index := path / "model.safetensors.index.json").is_file():
            shards = {}
            for name, shard in json.loads(index.read_text())["weight_map"].items():
                if shard not in shards:
                    shards[shard] = stack.enter_context(safe_open(str(path / shard), framework="pt"))
                files[name] = shards[shard]
        elif (single := path / "model.safetensors").is_file():
            handle = stack.enter_context(safe_open(str(single), framework="pt"))
            files = {name: handle for name in handle.keys()}
        elif (pickled := path / "pytorch_model.bin").is_file():
            state = torch.load(pickled, map_location="cpu", mmap=True, weights_only=True)
            files = {name: state for name in state}
        else:
            raise ModelError(f"{str(path)!r}: no weights (expected model.safetensors, a model.safetensors.index.json "
                             "and its shards, or pytorch_model.bin)")
        yield StoredWeights(path, files)


def stored_bytes(path: str | Path, dtype: torch.dtype | None = None) -> int:
    """The bytes of a model directory's floating-point weights in ``dtype`` (as stored where None), without reading
    them."""
    with stored_weights(path) as weights:
        total = 0
        for name in weights.names():
            shape, stored = weights.shape_and_dtype(name)
            size = (dtype if dtype is not None and stored.is_floating_point else stored).itemsize
            total += torch.Size(shape).numel() * size
        return total


def write_shards(out: str | Path, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]],
                 make: Callable[[str], torch.Tensor], max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write the tensors named in ``shapes`` (name -> (shape, dtype) of what ``make(name)`` returns) into ``out``,
    one shard in memory at a time; returns the files written. The cut into shards and their names are
    huggingface_hub's, from the shapes alone."""
    from huggingface_hub import split_state_dict_into_shards_factory

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = split_state_dict_into_shards_factory(
        shapes, get_storage_size=lambda entry: torch.Size(entry[0]).numel() * entry[1].itemsize,
        get_storage_id=lambda _: None, filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_bytes)
    for file, names in split.filename_to_tensors.items():
        save_file({name: make(name).contiguous() for name in names}, str(out / file), metadata={"format": "pt"})
    if split.is_sharded:
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename}, indent=2) + "\n")
    return [out / file for file in split.filename_to_tensors]


def save_beside_weights(base: str | Path, tokenizer, out: str | Path, dtype: torch.dtype,
                        trust_remote_code: bool = False) -> None:
    """What ``save_pretrained`` writes beside the weights, for weights written by :func:`write_shards` from the
    model directory ``base``: its config (with the weights' ``dtype``), its generation config where it has one, and
    ``tokenizer``."""
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code, local_files_only=True)
    config.dtype = dtype
    config.save_pretrained(out)
    if (Path(base) / "generation_config.json").is_file():
        GenerationConfig.from_pretrained(base, local_files_only=True).save_pretrained(out)
    tokenizer.save_pretrained(out)
