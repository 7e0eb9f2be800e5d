"""The evaluation job, and the score file format every evaluator writes (``evaluate``, ``lm-eval``).

A score file is JSON: ``labels`` (run, task, seed, split as the workflow named them), ``model``,
``spec`` ({task: score}), ``know``, ``reason``, ``instruct``, ``vers``, ``uni`` ({task: score}) and
``items`` (items scored per suite), all scores in [0, 100]; an evaluator may add its own keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateJob:
    model: str
    suites: dict  # {"spec": {task: suite}, "vers": {dimension: suite}}; a suite is {"path", "type", "metric"}
    labels: dict
    out: str  # the score file
    template: str
    predictions: str | None = None  # per-item predictions, for inspection
    batch_size: int = 128
    max_items: int | None = None  # the first items of each suite only
    dtype: str = "float32"
    trust_remote_code: bool = False
    device: str = "auto"
    log: object = print


def score_file(labels: dict, model: str, spec: dict[str, float], vers: dict[str, float], items: dict, **extra) -> dict:
    """The score file's content (Vers, Uni from :func:`cofi.metrics.aggregate`)."""
    from cofi.metrics import aggregate

    return {"labels": labels, "model": model, **aggregate(spec, vers), "items": items, **extra}


def evaluate(job: EvaluateJob) -> dict:
    from cofi.io import write_json
    from cofi.modeling import load_model
    from cofi.tasks import TASK_TYPES

    model, tokenizer = load_model(job.model, job.trust_remote_code, job.dtype, job.device)
    model.eval()
    results, items, predictions = {"spec": {}, "vers": {}}, {}, {}
    for group in ("spec", "vers"):
        for name, suite in job.suites[group].items():
            kind = TASK_TYPES[suite["type"]]
            records = kind.read(suite["path"])[: job.max_items]
            started = time.perf_counter()
            scored = kind.score(model, tokenizer, records, suite["metric"], job.template, job.batch_size)
            results[group][name], items[name], predictions[name] = scored["score"], len(records), scored["predictions"]
            job.log(f"{group} {name}: {scored['score']:.1f} on {len(records)} items ({time.perf_counter() - started:.1f}s)")
    scores = score_file(job.labels, job.model, results["spec"], results["vers"], items)
    write_json(job.out, scores)
    if job.predictions:
        write_json(job.predictions, predictions, indent=1)
    job.log(f"Vers {scores['vers']:.1f}; Uni {', '.join(f'{t} {u:.1f}' for t, u in scores['uni'].items())}")
    return scores
