"""What every fine-tuning method is: its own config keys, what it needs, its start-up checks, its setup.

A method is a small subclass of :class:`Method` in a module of its own under ``cofi/methods``,
registered in ``cofi/methods/__init__.py``. The trainer, the rules and the tables are the same
for all of them. A method says which parameters train and what it adds to the training step
(:class:`cofi.training.extension.Extension`: a gradient mask, a penalty, ...) through the :class:`Setup` it returns.

An input a method needs besides the base model and the task's data is one :class:`Need`,
declared in the method's module: its name is the finetune rule's named input, a key of the job's
``inputs`` and of :attr:`Inputs.paths`, and its ``path`` says where the
workflow finds the file. Nothing else has to change to add one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from cofi.config.settings import from_dict, schema_fragment, sweepable
from cofi.errors import InputError
from cofi.training.extension import Extension  # noqa: F401 - what a Setup carries; methods import it from here


class MethodError(InputError):
    """A run's settings make no sense for its method; the message names the config key."""


@dataclass(frozen=True)
class Need:
    """A file a method's fine-tuning job reads. ``path(experiment, run, task, seed)`` gives where the
    workflow finds it (a rule's output or the user's data), for one run at one task and seed."""

    name: str
    help: str
    path: Callable[[Any, Any, str, Any], str]


@dataclass
class Inputs:
    """Run-time inputs of a finetune job: ``paths`` holds the file of each :class:`Need` by name."""

    seed: int
    tokenize: Callable[[Any], list[dict]]  # records -> training examples, with the run's template
    load_model: Callable[[str], tuple[Any, Any]]  # a model directory -> (model, tokenizer)
    log: Callable[[str], None] = print
    paths: dict[str, str] = field(default_factory=dict)

    def path(self, need: Need) -> str:
        if need.name not in self.paths:
            raise InputError(f"this method reads {need.help}: give --input {need.name}=PATH")
        return self.paths[need.name]


@dataclass
class Setup:
    """What a method hands the trainer.

    ``model`` is what trains and ``trainable`` the names of its parameters that do; ``extensions``
    act in the training step (:class:`cofi.training.extension.Extension`); ``batches`` (optional) makes the batch
    stream from the task's examples, batch size, pad id and seed; ``finish(model, out_dir)`` returns
    the model to save (and may write extra files, e.g. a LoRA adapter).
    """

    model: Any
    trainable: list[str]
    extensions: list = field(default_factory=list)
    batches: Callable | None = None
    finish: Callable[[Any, Any], Any] = lambda model, out_dir: model


@dataclass
class CheckContext:
    """What a method's start-up check may look at: the experiment, and the model's depth (None if unknown)."""

    experiment: Any  # cofi.config.experiment.Experiment
    n_layers: int | None
    # Names of the Linear modules in the model's decoder layers (None where the model is unknown).
    projection_names: Callable[[], set[str] | None] = lambda: None
    check_files: bool = True  # False: the files the config names are not read (e.g. planning for elsewhere)


class Method:
    """Base class. Subclasses set ``name``, ``description`` and ``config`` and override :meth:`setup`.

    ``config``: the method's own config keys, a settings dataclass whose fields are declared with
    :func:`cofi.config.settings.setting` (a key the method cannot do without defaults to None and is
    enforced by :meth:`check`; ``format="path"`` marks a file path; ``sweep=True`` a key whose value may
    be a list, giving one run, and one table row, per value). :attr:`keys` (their JSON-schema fragments)
    and :attr:`sweep` come from it; :meth:`settings` reads a run's params as it. ``trains``: False for methods that build weights without training.
    ``needs``: the :class:`Need` of each file the job reads. :meth:`trains_pick`: the run trains
    the coarse search's pick (its region arrives in the params). ``uses_groups``: the params carry
    the config's ``module_groups`` (methods that train a region).

    What a run costs in memory is the method's to say too (:mod:`cofi.models.plan` never names a method):
    :meth:`trained_params`, :meth:`weight_copies` and ``adds_parameters``. They are pure, read only the run's
    params and the model's shape (a :class:`cofi.models.plan.Architecture`), and default to Full SFT's.
    """

    name: str = ""
    description: str = ""
    config: type | None = None  # the method's own keys: a settings dataclass (cofi.config.settings.setting)
    trains: bool = True
    needs: tuple[Need, ...] = ()
    uses_groups: bool = False
    adds_parameters: bool = False  # trains new parameters (adapters) beside the whole frozen model
    trains_on_old_data: bool = False  # sees versatility data while training: not a rival in "best Uni without old data"
    adapter: str | None = None  # the folder in a run's model/ holding an adapter it can be scored by, unmerged

    @property
    def keys(self) -> dict[str, dict]:
        """Each own key's JSON-schema fragment, with its default and description (from :attr:`config`)."""
        return schema_fragment(self.config)["properties"] if self.config else {}

    @property
    def sweep(self) -> tuple[str, ...]:
        """The own keys whose value may be a list (``setting(..., sweep=True)``)."""
        return sweepable(self.config) if self.config else ()

    def settings(self, params: dict):
        """The run's own keys (``run.params``) as the typed :attr:`config`; keys the workflow adds (the search's
        region, the module groups) are not its."""
        from cofi.config.settings import key_of

        own = {key_of(f) for f in dataclasses.fields(self.config)}
        return from_dict(self.config, {k: v for k, v in params.items() if k in own}, f"method {self.name}")

    def trained_params(self, arch, params: dict, module_groups: dict) -> int:
        """How many parameters a run of this method trains: every one (none for a method that does not train)."""
        return arch.params if self.trains else 0

    def weight_copies(self, params: dict) -> int:
        """Copies of the trained weights the method holds while training, beside the weights themselves (a
        penalty's start, the weights before a masked update): each one more float32 copy in the plan."""
        return 0

    def trains_pick(self, run) -> bool:
        """Whether ``run`` trains the coarse search's pick (it waits for the search and takes its region)."""
        return False

    def check(self, key: str, run, context: CheckContext) -> None:
        """Start-up checks of meaning (the schema has checked types and ranges); raise :class:`MethodError`.
        ``run`` is the :class:`cofi.config.experiment.Run`."""

    def setup(self, model, run, inputs: Inputs) -> Setup:
        """What trains of ``model`` for ``run`` (a :class:`cofi.config.experiment.Run`: ``run.params`` are the
        method's own keys, ``run.train`` the training settings)."""
        raise TypeError(f"method {self.name!r} does not train")

    def build(self, base: str, out, run, inputs: Inputs, dtype) -> None:
        """For methods that do not train: write the weights of the model to save into the directory ``out`` (in
        ``dtype``, a torch dtype), made from the base model's directory ``base``; the job adds its config and
        tokenizer. Work from the files (:mod:`cofi.models.weights`): at 7B and up, whole models may not fit twice."""
        raise TypeError(f"method {self.name!r} trains (it has no build step)")


def train_everything(model) -> list[str]:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return [name for name, _ in model.named_parameters()]
