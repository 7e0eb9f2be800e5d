"""The embedded default's own data and base model (only where the config leaves paths null)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cofi.config.settings import PromptSettings, TrainSettings
from cofi.data.world import WorldSpec


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


@dataclass(frozen=True)
class BaseModelJob:
    world: WorldSpec  # for the vocabulary
    architecture: dict  # layers, hidden, intermediate, heads
    train: TrainSettings
    seed: int
    train_data: str  # the versatility training mixture
    prompt: PromptSettings
    out: str
    log: object = print


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
