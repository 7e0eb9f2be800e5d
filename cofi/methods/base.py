"""What every fine-tuning method is: its own config keys, its start-up checks, and its setup.

A method is a small subclass of :class:`Method` in a module of its own under ``cofi/methods``,
registered in ``cofi/methods/__init__.py``. The trainer, the rules and the tables are the same
for all of them; a method only says which parameters train and what it adds to the loop (a
gradient hook, a penalty, a data mixture) through the :class:`Setup` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cofi.errors import InputError

# What the workflow can hand a method's finetune job besides the base model and the task data.
NEEDS = ("importance", "search_region", "source_model", "replay_data")


class MethodError(InputError):
    """A run's settings make no sense for its method; the message names the config key."""


@dataclass
class Inputs:
    """Run-time inputs of a finetune job (paths are None unless the method ``needs`` them)."""

    seed: int
    tokenize: Callable[[Any], list[dict]]  # records -> training examples, with the run's template
    load_model: Callable[[str], tuple[Any, Any]]  # a model directory -> (model, tokenizer)
    log: Callable[[str], None] = print
    importance: str | None = None
    source_model: str | None = None
    replay_data: str | None = None


@dataclass
class Setup:
    """What a method hands the trainer.

    ``model`` is what trains and ``trainable`` the names of its parameters that do. ``hooks``
    get ``attach(optimizer)`` once and ``after_backward()`` once per optimizer step; ``penalties``
    are callables giving a scalar added to every step's objective; ``batches`` (optional) makes the
    batch stream from the task's examples, batch size, pad id and seed; ``finish(model, out_dir)``
    returns the model to save (and may write extra files, e.g. a LoRA adapter).
    """

    model: Any
    trainable: list[str]
    hooks: list = field(default_factory=list)
    penalties: list = field(default_factory=list)
    batches: Callable | None = None
    finish: Callable[[Any, Any], Any] = lambda model, out_dir: model


@dataclass
class CheckContext:
    """What a method's start-up check may look at: the whole config and the model's depth (None if unknown)."""

    config: dict
    n_layers: int | None
    runs: dict  # every configured run (sweeps expanded): name -> entry
    # Names of the Linear modules in the model's decoder layers (None where the model is unknown).
    projection_names: Callable[[], set[str] | None] = lambda: None


class Method:
    """Base class. Subclasses set ``name``, ``description`` and ``keys`` and override :meth:`setup`.

    ``keys``: the method's own config keys, each a JSON-schema fragment with a ``default`` (a
    key the method cannot do without defaults to None and is enforced by :meth:`check`). ``sweep``: keys whose value may be a list, giving one run (and one
    table row) per value. ``trains``: False for methods that build weights without training.
    ``needs``: inputs from :data:`NEEDS` the workflow must provide. ``uses_groups``: the run's
    params carry the config's ``module_groups`` (methods that train a region).
    """

    name: str = ""
    description: str = ""
    keys: dict[str, dict] = {}
    sweep: tuple[str, ...] = ()
    trains: bool = True
    needs: tuple[str, ...] = ()
    uses_groups: bool = False

    def check(self, key: str, params: dict, context: CheckContext) -> None:
        """Start-up checks of meaning (the schema has checked types and ranges); raise :class:`MethodError`."""

    def setup(self, model, params: dict, inputs: Inputs) -> Setup:
        raise NotImplementedError

    def build(self, model, params: dict, inputs: Inputs):
        """For methods that do not train: the model to save, made from the base ``model``."""
        raise NotImplementedError


def train_everything(model) -> list[str]:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return [name for name, _ in model.named_parameters()]
