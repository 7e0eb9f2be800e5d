"""The evaluation job, and the score file format every evaluator writes (``evaluate``, ``lm-eval``).

A score file is JSON: ``labels`` (run, task, seed, split as the workflow named them), ``model``,
``spec`` ({task: score}), ``know``, ``reason``, ``instruct``, ``vers``, ``uni`` ({task: score}) and
``items`` (items scored per suite), all scores in [0, 100], and ``item_scores`` ({"spec": {task: [...]}, "vers":
{dimension: [...]}}: each item's score in [0, 1], in the suite's order; the tables' intervals resample them). An
evaluator may add its own keys; a score file without ``item_scores`` gets intervals from its seeds alone.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass

from cofi.config.settings import ComputeSettings, EvaluationSettings, PromptSettings
from cofi.jobs.interface import OnDevice, option


@dataclass(frozen=True)
class Scoring:
    """One score file of an evaluation job: a model, the suites of one split, the labels stored with them, the
    outputs."""

    model: str
    suites: dict  # {"spec": {task: suite}, "vers": {dimension: suite}}; a suite is {"path", "type", "metric"}
    labels: dict
    out: str  # the score file
    predictions: str | None = None  # per-item predictions, for inspection


@dataclass(frozen=True, kw_only=True)
class EvaluateJob(OnDevice):
    """Score models on speciality and versatility suites.

    Each :class:`Scoring` in turn (e.g. every seed of a run on the test and the validation split): one job pays
    the start-up once and loads each model once."""

    scorings: tuple[Scoring, ...] = option('[{"model", "suites", "labels", "out", "predictions"}, ...]: one per '
                                           'score file; suites is {"spec": {task: suite}, "vers": {dimension: suite}}')
    prompt: PromptSettings = option("the prompt settings")
    batch_size: int = option("evaluation batch size (evaluation.batch_size)", EvaluationSettings.batch_size)
    max_items: int | None = option("the first items of each suite only (evaluation.max_items)", None)
    generation: dict = option("decoding options over the model's generation config (default: greedy)", {})
    precision: typing.get_type_hints(ComputeSettings)["precision"] = option(
        "compute.precision: bf16 or fp16 score under autocast", ComputeSettings.precision)

    def execute(self) -> list[dict]:
        return evaluate(self)


def score_file(labels: dict, model: str, spec: dict[str, float], vers: dict[str, float], items: dict, **extra) -> dict:
    """The score file's content (Vers, Uni from :func:`cofi.evaluation.metrics.aggregate`)."""
    from cofi.evaluation.metrics import aggregate

    return {"labels": labels, "model": model, **aggregate(spec, vers), "items": items, **extra}


def read_scores(item: str) -> dict:
    """A score file given as PATH, or as RUN=PATH: the scores of run RUN stored in another run's file (a run
    that trains exactly what an earlier run trains shares its files), its labels then naming RUN. A run name
    has no "/" (:data:`cofi.config.experiment.RUN_NAME`), so a path with a folder is never taken for one."""
    import re

    from cofi.config.names import RUN_NAME
    from cofi.io import read_json

    run, sep, path = item.partition("=")
    if not (sep and re.fullmatch(RUN_NAME, run)):
        return read_json(item)
    scores = read_json(path)
    return {**scores, "labels": {**scores["labels"], "method": run}}


def evaluate(job: EvaluateJob) -> list[dict]:
    """Write each scoring's score file (and predictions); returns their contents."""
    from cofi.io import compute_line
    from cofi.models.loading import load_model
    from cofi.data.prompts import Prompter

    written, computed, loaded = [], 0.0, None
    for scoring in job.scorings:
        if loaded is None or loaded[0] != scoring.model:  # each model once: a job lists a model's scorings together
            model, tokenizer = load_model(scoring.model, job.trust_remote_code, job.dtype, job.device, spread=True)
            model.eval()
            loaded = (scoring.model, model, Prompter.of(tokenizer, job.prompt))
        started = time.perf_counter()
        with scoring_autocast(job.precision, loaded[1]):
            written.append(_score(job, loaded[1], loaded[2], scoring))
        computed += time.perf_counter() - started
    job.log(compute_line(computed))
    return written


def scoring_autocast(precision: str, model):
    """What scoring computes under (here and in the benchmarks): the same autocast as training's
    (:class:`cofi.training.loop.Precision`); float32 keeps plain arithmetic."""
    import torch

    from cofi.training.loop import Precision

    dtype = Precision.DTYPES[precision]
    return torch.autocast(model.device.type, dtype=dtype, enabled=dtype is not None)


def _score(job: EvaluateJob, model, prompter, scoring: Scoring) -> dict:
    from cofi.io import write_json
    from cofi.evaluation.tasks import TASK_TYPES

    results, items, item_scores, predictions = {"spec": {}, "vers": {}}, {}, {"spec": {}, "vers": {}}, {}
    suites = [(group, name, suite, TASK_TYPES[suite["type"]]) for group in ("spec", "vers")
              for name, suite in scoring.suites[group].items()]
    records = {name: kind.read(suite["path"])[: job.max_items] for _, name, suite, kind in suites}
    total, done, started = sum(map(len, records.values())), 0, time.perf_counter()
    labels = scoring.labels
    which = " ".join(str(labels[key]) for key in ("method", "task", "seed", "split") if labels.get(key) is not None)
    for group, name, suite, kind in suites:
        began = time.perf_counter()
        scored = kind.score(model, prompter, records[name], suite["metric"], job.batch_size, job.generation)
        results[group][name], items[name], predictions[name] = scored["score"], len(records[name]), scored["predictions"]
        item_scores[group][name] = scored["items"]
        done += len(records[name])
        remaining = (time.perf_counter() - started) / done * (total - done)  # by items: suites differ in size
        job.log(f"{which}: {group} {name}: {scored['score']:.1f} on {len(records[name])} items "
                f"({time.perf_counter() - began:.1f}s; {done}/{total} items, ETA {remaining:.0f}s)")
    scores = score_file(labels, scoring.model, results["spec"], results["vers"], items, item_scores=item_scores)
    write_json(scoring.out, scores)
    if scoring.predictions:
        write_json(scoring.predictions, predictions, indent=1)
    job.log(f"{which}: Vers {scores['vers']:.1f}; Uni {', '.join(f'{t} {u:.1f}' for t, u in scores['uni'].items())}")
    return scores
