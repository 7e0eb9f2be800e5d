"""Unit importance, the CoFiTune/DAS recipe: how much a dropout-KL proxy moves when a unit is damped.

Virtual masks (ones that require grad) multiply three kinds of unit in every decoder layer:

- ``head``: each attention head's output (the input of ``o_proj``, one slice per head);
- ``intermediate``: each FFN intermediate unit (the output of ``up_proj``);
- ``output``: each FFN output unit (the output of ``down_proj``).

They are attached with forward hooks, so any Llama-style model works without copied model code.
Each batch runs twice with a small dropout; loss = 0.1 · KL(first ‖ second) over the logits of the
real tokens. The masks' gradients are accumulated (absolute values by default, signed as an
option) and divided by the token count; :func:`normalise` then gives I ∈ [0, 1) per layer.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from cofi.errors import InputError
from cofi.models.layers import LayoutError, decoder_layers

UNIT_KINDS = ("head", "intermediate", "output")
KL_WEIGHT = 0.1  # the official code's scale of the proxy loss
FINGERPRINT_KEYS = ("model_type", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "hidden_size", "intermediate_size", "head_dim")


class ImportanceError(InputError):
    """An importance file that does not fit the model; the message names the file and the mismatch."""


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def fingerprint(config) -> dict:
    """The architecture facts an importance file must match to be used on a model."""
    values = {key: getattr(config, key, None) for key in FINGERPRINT_KEYS}
    values["head_dim"] = head_dim(config)
    values["num_key_value_heads"] = values["num_key_value_heads"] or config.num_attention_heads
    return values


def unit_shapes(config) -> dict[str, tuple[int, int]]:
    layers = config.num_hidden_layers
    return {"head": (layers, config.num_attention_heads), "intermediate": (layers, config.intermediate_size),
            "output": (layers, config.hidden_size)}


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """Per layer (row): z-score over the layer's units (unbiased std, as the official code), then |tanh|.

    A layer whose units all score the same gets importance 0 everywhere (nothing to tell apart).
    Note that |tanh| also gives a high importance to a unit far *below* its layer's mean.
    """
    raw = raw.double()
    std = raw.std(dim=1, keepdim=True)
    z = (raw - raw.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    return torch.tanh(z).abs().float()


def masked_layers(model):
    """The decoder layers, checked for the projections the masks hook."""
    try:
        layers = decoder_layers(model)
    except LayoutError as error:
        raise InputError(str(error)) from None
    for layer in layers[:1]:
        attention, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if not (hasattr(attention, "o_proj") and hasattr(mlp, "up_proj") and hasattr(mlp, "down_proj")):
            raise InputError(f"{type(model).__name__}: importance needs self_attn.o_proj, mlp.up_proj and mlp.down_proj")
    return layers


@contextmanager
def virtual_masks(model, dropout: float):
    """Attach mask hooks (and dropout on attention probabilities and MLP outputs); yields the masks."""
    config = model.config
    shapes = unit_shapes(config)
    device = next(model.parameters()).device
    masks = {kind: torch.ones(shape, device=device, requires_grad=True) for kind, shape in shapes.items()}
    width = head_dim(config)
    handles, saved_dropout = [], []

    def scale_heads(index):
        def hook(module, args):
            factor = masks["head"][index].repeat_interleave(width).to(args[0].dtype)
            return (args[0] * factor, *args[1:])
        return hook

    def scale_output(kind, index):
        def hook(module, args, output):
            return output * masks[kind][index].to(output.dtype)
        return hook

    def drop_mlp_output(module, args, output):
        return F.dropout(output, dropout, training=module.training)

    for index, layer in enumerate(masked_layers(model)):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(scale_heads(index)))
        handles.append(layer.mlp.up_proj.register_forward_hook(scale_output("intermediate", index)))
        handles.append(layer.mlp.down_proj.register_forward_hook(scale_output("output", index)))
        handles.append(layer.mlp.register_forward_hook(drop_mlp_output))
        saved_dropout.append((layer.self_attn, getattr(layer.self_attn, "attention_dropout", 0.0)))
        layer.self_attn.attention_dropout = dropout  # read by Llama-style attention in training mode
    try:
        yield masks
    finally:
        for handle in handles:
            handle.remove()
        for attention, value in saved_dropout:
            attention.attention_dropout = value


def part_seed(seed: int, batch: int, part: int) -> int:
    """The dropout seed of one part of one batch: the same wherever that part runs (any process, any micro-batch)."""
    return seed + 1_000_003 * (batch + 1) + part


def accumulate_importance(model, batches, dropout: float, signed: bool = False, seed: int = 0,
                          micro_batch_size: int | None = None, checkpointing: bool = False,
                          process: int = 0, processes: int = 1, reduce=None) -> dict[str, torch.Tensor]:
    """Raw importance per unit kind, shape [layers, units]: accumulated mask gradients / token count.

    ``batches`` yield ``input_ids`` and ``attention_mask`` (unlabeled text; no labels are used).
    The model's own parameters are frozen meanwhile (only the masks need gradients). For large models:
    ``micro_batch_size`` runs each batch in parts of that many rows (their mask gradients summed before the
    batch's absolute value is taken), and ``checkpointing`` recomputes each layer's activations in the backward
    (the same dropout draws: the RNG state is replayed). Sharded over ``processes`` (FSDP2), this one runs the parts
    ``process``, ``process + processes``, … of each batch (parts of ``micro_batch_size`` rows, else of
    batch_size / processes) and ``reduce`` sums a tensor over the processes: the mask gradients of each batch before
    their absolute value, and the token count. A batch run in parts draws each part's dropout from its own seed
    (:func:`part_seed`), so the parts give the same importance whichever process runs them; a whole batch draws
    from one stream started at ``seed``.
    """
    torch.manual_seed(seed)
    was_training = model.training
    requires = [(p, p.requires_grad) for p in model.parameters()]
    for parameter, _ in requires:
        parameter.requires_grad_(False)
    total = {kind: torch.zeros(shape, dtype=torch.float64) for kind, shape in unit_shapes(model.config).items()}
    tokens = 0
    model.train()  # dropout on
    if checkpointing:
        from cofi.training.loop import enable_gradient_checkpointing

        enable_gradient_checkpointing(model)
    try:
        with virtual_masks(model, dropout) as masks:
            for index, batch in enumerate(batches):
                device = next(model.parameters()).device
                rows = len(batch["input_ids"])
                step = micro_batch_size or max(-(-rows // processes), 1)
                starts = list(range(0, rows, step))
                if len(starts) % processes:
                    raise ValueError(f"importance: a batch of {rows} inputs in parts of {step} does not split evenly "
                                     f"over {processes} processes (set batch_size or micro_batch_size so that it does)")
                for part in range(process, len(starts), processes):
                    start = starts[part]
                    if len(starts) > 1:
                        torch.manual_seed(part_seed(seed, index, part))
                    inputs = {key: batch[key][start : start + step].to(device) for key in ("input_ids", "attention_mask")}
                    first = F.log_softmax(model(**inputs).logits.float(), dim=-1)
                    second = F.log_softmax(model(**inputs).logits.float(), dim=-1)
                    # KL(first ‖ second) per token, summed over the real (unpadded) tokens.
                    per_token = F.kl_div(second, first, log_target=True, reduction="none").sum(-1)
                    real = inputs["attention_mask"].bool()
                    loss = KL_WEIGHT * per_token[real].sum()
                    loss.backward()  # the masks' gradients add up over the batch's parts
                    tokens += int(real.sum())
                for kind, mask in masks.items():
                    grad = mask.grad.detach() if mask.grad is not None else torch.zeros_like(mask)
                    grad = (reduce(grad.double()) if reduce else grad.double()).cpu()
                    total[kind] += grad if signed else grad.abs()
                    mask.grad = None
    finally:
        for parameter, flag in requires:
            parameter.requires_grad_(flag)
        model.train(was_training)
    if reduce:
        tokens = int(reduce(torch.tensor(tokens, dtype=torch.float64, device=next(model.parameters()).device)).item())
    if tokens == 0:
        raise ValueError("importance: the batches hold no tokens")
    return {kind: (value / tokens).float() for kind, value in total.items()}


def prompt_batches(records: list[dict], prompter, batch_size: int, n_batches: int, max_len: int,
                   seed: int) -> list[dict]:
    """Unlabeled inputs: the prompts of a seeded sample of records, right-padded batches."""
    from cofi.training.loop import collate

    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = [records[i] for i in order[: batch_size * n_batches]]
    examples = []
    for record in chosen:
        ids = prompter.prompt_ids(record)[:max_len]
        examples.append({"input_ids": ids, "labels": ids})
    pad = prompter.tokenizer.pad_token_id
    return [collate(examples[i : i + batch_size], pad) for i in range(0, len(examples), batch_size)]


def save_importance(path: str | Path, raw: dict[str, torch.Tensor], config, options: dict) -> dict[str, torch.Tensor]:
    """Write normalised importance (``head``, ``intermediate``, ``output``) and the raw sums
    (``<kind>_raw``) as safetensors, with the model fingerprint and options as metadata."""
    importance = {kind: normalise(raw[kind]) for kind in UNIT_KINDS}
    tensors = {**{k: v.contiguous() for k, v in importance.items()},
               **{f"{k}_raw": raw[k].contiguous() for k in UNIT_KINDS}}
    metadata = {
        "format": "cofi-importance-1",
        "fingerprint": json.dumps(fingerprint(config), sort_keys=True),
        "shapes": json.dumps({k: list(v.shape) for k, v in importance.items()}, sort_keys=True),
        "options": json.dumps(options, sort_keys=True),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return importance


def load_importance(path: str | Path, config=None, raw: bool = False) -> dict[str, torch.Tensor]:
    """Normalised importance per kind (or the raw sums); refused unless it was made for ``config``'s shape."""
    path = Path(path)
    if not path.is_file():
        raise ImportanceError(f"{path}: no such importance file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = set(handle.keys())
            wanted = [f"{k}_raw" if raw else k for k in UNIT_KINDS]
            missing = [n for n in wanted if n not in names]
            if missing or "fingerprint" not in metadata:
                raise ImportanceError(f"{path}: not a cofi importance file (missing {missing or 'fingerprint metadata'})")
            tensors = {kind: handle.get_tensor(name) for kind, name in zip(UNIT_KINDS, wanted)}
    except ImportanceError:
        raise
    except Exception as error:  # safetensors raises its own error types for a damaged header
        raise ImportanceError(f"{path}: cannot read as safetensors ({error})") from None
    if config is not None:
        stored, expected = json.loads(metadata["fingerprint"]), fingerprint(config)
        differ = [f"{k}: file {stored.get(k)!r}, model {expected[k]!r}" for k in expected if stored.get(k) != expected[k]]
        if differ:
            raise ImportanceError(f"{path}: made for a model of another shape ({'; '.join(differ)})")
        for kind, shape in unit_shapes(config).items():
            if tuple(tensors[kind].shape) != shape:
                raise ImportanceError(f"{path}: tensor {kind!r} has shape {list(tensors[kind].shape)}, the model needs {list(shape)}")
    return tensors


def plot_importance(importance: dict[str, torch.Tensor], path: str | Path, title: str = "") -> None:
    """One heatmap per unit kind (layers × units)."""
    from matplotlib.ticker import MaxNLocator

    from cofi.io import pyplot, save_figure

    plt = pyplot()

    figure, axes = plt.subplots(len(UNIT_KINDS), 1, figsize=(10, 2.2 * len(UNIT_KINDS)), constrained_layout=True)
    labels = {"head": "attention heads", "intermediate": "FFN intermediate units", "output": "FFN output units"}
    for axis, kind in zip(axes, UNIT_KINDS):
        values = importance[kind].numpy()
        image = axis.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
        axis.set_title(f"{labels[kind]} ({values.shape[1]} per layer)", fontsize=10)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("layer")
        axis.set_yticks(range(values.shape[0]), [str(i + 1) for i in range(values.shape[0])], fontsize=7)
        figure.colorbar(image, ax=axis, label="importance I")
    axes[-1].set_xlabel("unit")
    if title:
        figure.suptitle(title)
    path = Path(path)
    save_figure(figure, path.with_suffix(""), dpi=120, suffixes=(path.suffix,))
