"""The embedded default's own data and base model (only where the config leaves paths null), the import of a GGUF
model file, and the fetch of a model named by its hub id."""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass
from pathlib import Path

from cofi.config.settings import BaseTrainSettings, ModelSettings, PromptSettings
from cofi.data.world import WorldSpec
from cofi.jobs.interface import Dtype, Job, option


def make_data(kind: str, spec, out_dir: str, log=print) -> dict[str, Path]:
    """Every split of the data made here (``kind``: world or chat, :mod:`cofi.data.embedded`) as ``<out_dir>/<split>.jsonl``."""
    from cofi.data.records import write_jsonl
    from cofi.data.embedded import suites_module

    written = {}
    for stem, records in suites_module(kind).build(spec).items():
        written[stem] = Path(out_dir) / f"{stem}.jsonl"
        write_jsonl(written[stem], records)
        log(f"wrote {len(records):>6} records to {written[stem]}")
    return written


@dataclass(frozen=True, kw_only=True)
class MakeDataJob(Job):
    """Write the data made here (the symbolic world or the chat suites) as JSONL."""

    suites: typing.Literal["world", "chat"] = option("which (embedded.suites)", "world")
    settings: dict = option("its settings (embedded.world or embedded.chat)", {})
    out_dir: str = option("directory for <split>.jsonl files")

    def execute(self) -> None:
        from cofi.data.embedded import spec_of
        from cofi.io import compute_line

        started = time.perf_counter()
        make_data(self.suites, spec_of(self.suites, self.settings), self.out_dir, log=self.log)
        self.log(compute_line(time.perf_counter() - started))


@dataclass(frozen=True, kw_only=True)
class ImportGgufJob(Job):
    """Write a Llama-family GGUF model file as a Hugging Face model directory."""

    computes: typing.ClassVar[bool] = True
    gguf: str = option("the .gguf file")
    out: str = option("the model directory to write (must not exist or be empty)")
    dtype: Dtype = option("dtype of the dequantized weights (model.dtype)", ModelSettings.dtype)

    def execute(self) -> None:
        from cofi.io import compute_line
        from cofi.models.gguf import import_gguf

        started = time.perf_counter()  # the conversion is the job's work: reading, dequantizing, writing
        import_gguf(self.gguf, self.out, self.dtype, log=self.log)
        self.log(compute_line(time.perf_counter() - started))


@dataclass(frozen=True, kw_only=True)
class FetchModelJob(Job):
    """Fetch a model's snapshot from the Hugging Face hub (safetensors, configs, tokenizer) into the hub cache, and
    link it into the experiment's model folder with the commit it came from. The one job that may go online (where
    the environment does not say HF_HUB_OFFLINE=1: then it takes the cached snapshot)."""

    repo: str = option("the hub repository, owner/name")
    revision: str = option("a branch, tag or commit", "main")
    out: str | None = option("the model folder to write (null: the hub cache only)", None)

    def execute(self) -> None:
        from cofi.models.hub import fetch

        fetch(self.repo, self.revision, self.out, log=self.log)


@dataclass(frozen=True, kw_only=True)
class BaseModelJob(Job):
    """Build and align the embedded base model."""

    computes: typing.ClassVar[bool] = True
    world: WorldSpec = option("embedded.world (for the vocabulary)")
    architecture: dict = option("layers, hidden, intermediate, heads (embedded.base)")
    train: BaseTrainSettings = option("its training (embedded.base.train)")
    seed: int = option("seed of the weights and the data order (embedded.base.seed)")
    train_data: str = option("the versatility training mixture (JSONL)")
    prompt: PromptSettings = option("the prompt settings (template, max_len)")
    out: str = option("output model directory")

    def execute(self) -> None:
        build_base(self)


def build_base(job: BaseModelJob) -> None:
    """A word-level tokenizer and a small Llama, "aligned" on the versatility mixture, saved as a HF directory."""
    from cofi.data.records import load_records
    from cofi.io import compute_line
    from cofi.models.loading import build_llama, build_word_tokenizer, save_model
    from cofi.data.prompts import Prompter
    from cofi.training.loop import tokenize_dataset, train
    from cofi.data.world import vocabulary

    tokenizer = build_word_tokenizer(vocabulary(job.world))
    model = build_llama(len(tokenizer), {**job.architecture, "max_len": job.prompt.max_len}, seed=job.seed)
    examples = tokenize_dataset(load_records(job.train_data), Prompter.of(tokenizer, job.prompt), True, job.prompt.max_len)
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = train(model, examples, job.train, job.seed, tokenizer.pad_token_id, out / "loss.csv", log=job.log)
    save_model(model, tokenizer, out)
    job.log(f"saved the base model to {out} ({summary['seconds']:.0f}s of training)")
    job.log(compute_line(summary["seconds"]))
