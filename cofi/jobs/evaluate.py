"""The evaluation job, and the score file format every evaluator writes (``evaluate``, ``lm-eval``).

A score file is JSON: ``labels`` (run, task, seed, split as the workflow named them), ``model`` (and ``adapter``
where a LoRA adapter was applied unmerged, ``subset`` where a seeded sample of the items was scored),
``spec`` ({task: score}), ``know``, ``reason``, ``instruct``, ``vers``, ``uni`` ({task: score}) and
``items`` (items scored per suite), all scores in [0, 100], and ``item_scores`` ({"spec": {task: [...]}, "vers":
{dimension: [...]}}: each item's score in [0, 1], in the suite's order; the tables' intervals resample them), and
``item_scores_lenient`` (the same for generation suites, scored with the answer allowed anywhere in the response:
:func:`cofi.evaluation.metrics.lenient`). An evaluator may add its own keys; a score file without ``item_scores``
gets intervals from its seeds alone.
"""

from __future__ import annotations

import dataclasses
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
    suites: dict  # {"spec": {task: suite}, "vers": {dimension: suite}}; a suite is {"path", "type", "metric"} (and
    # "max_new_tokens" where configured), or harness tasks {"lm_eval", "num_fewshot", "metric", "include"}
    # (cofi.evaluation.harness)
    labels: dict
    out: str  # the score file
    predictions: str | None = None  # per-item predictions, for inspection
    subset: dict | None = None  # {"items", "seed"}: a seeded sample of each suite (cofi.evaluation.subsets), else all
    adapter: str | None = None  # a LoRA adapter (peft) applied, unmerged, on ``model``


@dataclass(frozen=True, kw_only=True)
class EvaluateJob(OnDevice):
    """Score models on speciality and versatility suites.

    Each :class:`Scoring` in turn (e.g. every seed of a run on the test and the validation split): one job pays
    the start-up once and loads each model once."""

    scorings: tuple[Scoring, ...] = option('[{"model", "suites", "labels", "out", "predictions", "subset", "adapter"}, '
                                           '...]: one per score file; suites is {"spec": {task: suite}, "vers": '
                                           '{dimension: suite}}')
    prompt: PromptSettings = option("the prompt settings")
    batch_size: int = option("evaluation batch size (evaluation.batch_size)", EvaluationSettings.batch_size)
    max_items: int | None = option("the first items of each suite only (evaluation.max_items)", None)
    generation: dict = option("decoding options over the model's generation config (default: greedy)", {})
    precision: typing.get_type_hints(ComputeSettings)["precision"] = option(
        "compute.precision: bf16 or fp16 score under autocast", ComputeSettings.precision)
    backend: typing.get_type_hints(EvaluationSettings)["backend"] = option(
        "evaluation.backend: hf, or vllm (every suite through the harness on vLLM)", EvaluationSettings.backend)

    def execute(self) -> list[dict]:
        if self.backend == "vllm":
            return evaluate_through_harness(self, vllm_factory(self))
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
        which = (scoring.model, scoring.adapter)
        if loaded is None or loaded[0] != which:  # each model once: a job lists a model's scorings together
            model, tokenizer = load_model(scoring.model, job.trust_remote_code, job.dtype, job.device, spread=True)
            if scoring.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, scoring.adapter)  # unmerged: the adapter's own forward
            model.eval()
            loaded = (which, model, Prompter.of(tokenizer, job.prompt), {})
        started = time.perf_counter()
        with scoring_autocast(job.precision, loaded[1]):
            written.append(_score(job, *loaded[1:], scoring))
        computed += time.perf_counter() - started
    job.log(compute_line(computed))
    return written


def vllm_factory(job: EvaluateJob):
    """A function making the harness's vLLM model of a model directory, over every GPU the job sees (tensor parallel
    where the heads divide among them); a clear error where there is no GPU or no vLLM."""
    import importlib.util

    import torch

    from cofi.evaluation.harness import HarnessError, vllm_model_args

    if not torch.cuda.is_available():
        raise HarnessError("evaluation.backend vllm: this job sees no CUDA GPU (vLLM serves on GPUs); use backend: hf")
    if importlib.util.find_spec("vllm") is None:
        raise HarnessError("evaluation.backend vllm: vllm is not installed in this job's environment (pip install vllm)")

    def make(model_dir: str, adapter: str | None = None):
        from lm_eval.models.vllm_causallms import VLLM
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_dir, local_files_only=True, trust_remote_code=job.trust_remote_code)
        heads = (config.num_attention_heads, getattr(config, "num_key_value_heads", None))
        args = vllm_model_args(model_dir, torch.cuda.device_count(), heads, job.dtype, job.precision, job.batch_size,
                               job.prompt.chat_template, job.trust_remote_code, adapter)
        job.log(f"vLLM on {args['tensor_parallel_size']} GPU(s): {args}")
        return VLLM(**args)

    return make


def evaluate_through_harness(job: EvaluateJob, make_model) -> list[dict]:
    """Every scoring through lm-evaluation-harness on the model ``make_model(model_dir, adapter)`` gives (vLLM's):
    harness suites as they are, cofi's JSONL suites as local harness tasks scored by cofi's own metrics
    (:func:`cofi.evaluation.harness.as_harness_suite`), written to a temporary folder for the scoring."""
    import tempfile

    from transformers import AutoTokenizer

    from cofi.data.prompts import Prompter
    from cofi.evaluation.harness import as_harness_suite, is_harness

    written, loaded = [], None
    for scoring in job.scorings:
        if loaded is None or loaded[0] != (scoring.model, scoring.adapter):
            tokenizer = AutoTokenizer.from_pretrained(scoring.model, local_files_only=True,
                                                      trust_remote_code=job.trust_remote_code)
            loaded = ((scoring.model, scoring.adapter), make_model(scoring.model, scoring.adapter),
                      Prompter.of(tokenizer, job.prompt))
        with tempfile.TemporaryDirectory(prefix="cofi-tasks-") as folder:
            context = getattr(loaded[1], "max_length", None)  # the harness model's positions
            suites = {group: {name: suite if is_harness(suite) else as_harness_suite(
                          name, suite, loaded[2], job.prompt, folder, job.max_items, context)
                          for name, suite in scoring.suites[group].items()} for group in ("spec", "vers")}
            written.append(_score(job, None, loaded[2], {"harness": loaded[1]},
                                  dataclasses.replace(scoring, suites=suites)))
    return written


def scoring_autocast(precision: str, model):
    """What scoring computes under (here and in the benchmarks): the same autocast as training's
    (:class:`cofi.training.loop.Precision`); float32 keeps plain arithmetic."""
    import torch

    from cofi.training.loop import Precision

    dtype = Precision.DTYPES[precision]
    return torch.autocast(model.device.type, dtype=dtype, enabled=dtype is not None)


def _score(job: EvaluateJob, model, prompter, views: dict, scoring: Scoring) -> dict:
    """One score file; ``views`` holds the harness's view of ``model``, made once per model where a suite needs it."""
    from cofi.io import write_json
    from cofi.evaluation import harness
    from cofi.evaluation.harness import is_harness
    from cofi.evaluation.tasks import TASK_TYPES

    def harness_model():
        if "harness" not in views:
            views["harness"] = harness.harness_model(model, scoring.model, job.batch_size, job.prompt.chat_template,
                                                     job.trust_remote_code)
        return views["harness"]

    results, items, item_scores, predictions = {"spec": {}, "vers": {}}, {}, {"spec": {}, "vers": {}}, {}
    lenient = {"spec": {}, "vers": {}}  # generation suites: the answer anywhere in the response
    suites = [(group, name, suite) for group in ("spec", "vers") for name, suite in scoring.suites[group].items()]
    records = {name: TASK_TYPES[suite["type"]].read(suite["path"])[: job.max_items]
               for _, name, suite in suites if not is_harness(suite)}
    if scoring.subset is not None:
        from cofi.evaluation.subsets import chosen

        records = {name: [kept[i] for i in chosen(len(kept), scoring.subset["items"], scoring.subset["seed"])]
                   for name, kept in records.items()}
    total, done, started = sum(map(len, records.values())), 0, time.perf_counter()
    labels = scoring.labels
    which = " ".join(str(labels[key]) for key in ("method", "task", "seed", "split") if labels.get(key) is not None)
    for group, name, suite in suites:
        began = time.perf_counter()
        if is_harness(suite):
            scored = harness.score(harness_model(), suite, job.prompt.chat_template, job.prompt.system,
                                   limit=job.max_items, subset=scoring.subset)
            progress = f"harness tasks {', '.join(suite['lm_eval'])}"
        else:
            kind = TASK_TYPES[suite["type"]]
            scored = kind.score(model, prompter, records[name], suite["metric"], job.batch_size, job.generation,
                                suite.get("max_new_tokens"))
            done += len(records[name])
            remaining = (time.perf_counter() - started) / done * (total - done)  # by items: suites differ in size
            progress = f"{done}/{total} items, ETA {remaining:.0f}s"
        results[group][name], items[name], predictions[name] = scored["score"], len(scored["items"]), scored["predictions"]
        item_scores[group][name] = scored["items"]
        if "lenient" in scored:
            lenient[group][name] = scored["lenient"]
        job.log(f"{which}: {group} {name}: {scored['score']:.1f} on {len(scored['items'])} items "
                f"({time.perf_counter() - began:.1f}s; {progress})")
    extra = {key: getattr(scoring, key) for key in ("subset", "adapter") if getattr(scoring, key) is not None}
    if lenient["spec"] or lenient["vers"]:
        extra["item_scores_lenient"] = lenient
    scores = score_file(labels, scoring.model, results["spec"], results["vers"], items, item_scores=item_scores, **extra)
    write_json(scoring.out, scores)
    if scoring.predictions:
        write_json(scoring.predictions, predictions, indent=1)
    job.log(f"{which}: Vers {scores['vers']:.1f}; Uni {', '.join(f'{t} {u:.1f}' for t, u in scores['uni'].items())}")
    return scores
