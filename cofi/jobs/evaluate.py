"""The evaluation job, and the score file format every evaluator writes (``evaluate``, ``lm-eval``).

A score file is JSON: ``labels`` (run, task, seed, split as the workflow named them), ``model``,
``spec`` ({task: score}), ``know``, ``reason``, ``instruct``, ``vers``, ``uni`` ({task: score}) and
``items`` (items scored per suite), all scores in [0, 100]; an evaluator may add its own keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cofi.settings import PromptSettings


@dataclass(frozen=True)
class EvaluateJob:
    model: str
    suites: dict  # {"spec": {task: suite}, "vers": {dimension: suite}}; a suite is {"path", "type", "metric"}
    labels: dict
    out: str  # the score file
    prompt: PromptSettings
    predictions: str | None = None  # per-item predictions, for inspection
    batch_size: int = 128
    max_items: int | None = None  # the first items of each suite only
    generation: dict = field(default_factory=dict)  # decoding options over the model's generation config
    dtype: str = "float32"
    trust_remote_code: bool = False
    device: str = "auto"
    log: object = print


def score_file(labels: dict, model: str, spec: dict[str, float], vers: dict[str, float], items: dict, **extra) -> dict:
    """The score file's content (Vers, Uni from :func:`cofi.metrics.aggregate`)."""
    from cofi.metrics import aggregate

    return {"labels": labels, "model": model, **aggregate(spec, vers), "items": items, **extra}


def evaluate(job: EvaluateJob) -> dict:
    from cofi.io import compute_line, write_json
    from cofi.modeling import load_model
    from cofi.prompts import Prompter
    from cofi.tasks import TASK_TYPES

    model, tokenizer = load_model(job.model, job.trust_remote_code, job.dtype, job.device)
    model.eval()
    prompter = Prompter.of(tokenizer, job.prompt)
    results, items, predictions = {"spec": {}, "vers": {}}, {}, {}
    suites = [(group, name, suite, TASK_TYPES[suite["type"]]) for group in ("spec", "vers")
              for name, suite in job.suites[group].items()]
    records = {name: kind.read(suite["path"])[: job.max_items] for _, name, suite, kind in suites}
    total, done, started = sum(map(len, records.values())), 0, time.perf_counter()
    for group, name, suite, kind in suites:
        began = time.perf_counter()
        scored = kind.score(model, prompter, records[name], suite["metric"], job.batch_size, job.generation)
        results[group][name], items[name], predictions[name] = scored["score"], len(records[name]), scored["predictions"]
        done += len(records[name])
        remaining = (time.perf_counter() - started) / done * (total - done)  # by items: suites differ in size
        job.log(f"{group} {name}: {scored['score']:.1f} on {len(records[name])} items "
                f"({time.perf_counter() - began:.1f}s; {done}/{total} items, ETA {remaining:.0f}s)")
    computed = time.perf_counter() - started
    scores = score_file(job.labels, job.model, results["spec"], results["vers"], items)
    write_json(job.out, scores)
    if job.predictions:
        write_json(job.predictions, predictions, indent=1)
    job.log(f"Vers {scores['vers']:.1f}; Uni {', '.join(f'{t} {u:.1f}' for t, u in scores['uni'].items())}")
    job.log(compute_line(computed))
    return scores
