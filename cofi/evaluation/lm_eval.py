"""Optional evaluator: EleutherAI's ``lm-eval`` harness on a checkpoint, written as a cofi score file.

Where ``lm_eval`` is installed, ``python -m cofi lm-eval`` runs harness tasks (MMLU, GSM8K,
IFEval, … — the harness fetches their data, so a machine without the Hugging Face hub needs them
in its local cache) or local tasks made from cofi's JSONL suites (:func:`write_local_task`), and
maps them onto the score format of ``python -m cofi evaluate``: each speciality task and each
versatility dimension is the mean, in percent, of its harness tasks' chosen metric. The result
goes into the same tables as every other score file.
"""

from __future__ import annotations

import json
from pathlib import Path

from cofi.errors import InputError

# Result keys that are bookkeeping, not metrics.
NOT_METRICS = {"name", "alias", "sample_len", "samples"}


class LmEvalError(InputError):
    """lm-eval missing, or a task mapping it cannot serve; the message says which."""


def jinja_template(template: str) -> str:
    """cofi's prompt template (``{instruction}``, ``{input}``) as the harness's Jinja ``doc_to_text``."""
    if "{{" in template or "}}" in template or "{%" in template:
        raise LmEvalError(f"prompt template {template!r}: literal braces cannot be carried into an lm-eval task")
    return template.replace("{instruction}", "{{instruction}}").replace("{input}", "{{input}}")


# The user turn of a chat prompt (cofi.data.prompts.user_turn) in the harness's Jinja.
CHAT_USER_TURN = "{{instruction}}{% if input %}\n\n{{input}}{% endif %}"


# The module written beside exported task YAMLs: the harness imports it by path (``!function``) and
# scores each generated response with cofi's own metric through it.
SCORING_MODULE = "cofi_scoring"


def harness_scorer(metric: str):
    """A harness ``process_results(doc, results)`` scoring the response as cofi's ``metric`` does (the
    ``score_response`` of the task type that has the metric)."""
    from cofi.evaluation.tasks import TASK_TYPES

    kind = next(kind for kind in TASK_TYPES.values() if metric in kind.metrics)

    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        if "checks" in doc:  # the JSON loader gives every check the union of all checks' kwargs, absent ones as None
            doc = {**doc, "checks": [{"id": c["id"], "kwargs": {k: v for k, v in (c.get("kwargs") or {}).items()
                                                                if v is not None}} for c in doc["checks"]]}
        return {metric: kind.score_response(results[0].strip(), doc, metric)}  # cofi strips its responses too

    return process_results


def _write_scoring_module(directory: Path) -> None:
    from cofi.evaluation.tasks import TASK_TYPES

    scored = dict.fromkeys(m for kind in TASK_TYPES.values() if not kind.multiple_choice for m in kind.metrics)
    lines = [f"{metric} = harness_scorer({metric!r})" for metric in scored]
    (directory / f"{SCORING_MODULE}.py").write_text(
        '"""Written by cofi (python -m cofi.devtools lm-eval-task): the harness scores these tasks with cofi\'s metrics."""\n'
        "from cofi.evaluation.lm_eval import harness_scorer\n\n" + "\n".join(lines) + "\n")


def write_local_task(directory: str | Path, name: str, path: str | Path, task_type: str, template: str,
                     max_gen_toks: int = 64, chat_template: bool = False, metric: str | None = None) -> Path:
    """An lm-eval task YAML over one of cofi's JSONL suites, scored as cofi scores it.

    Multiple choice: accuracy by summed log-likelihood of each choice. Generation and instruction
    following: greedy, cut at EOS, each response scored by cofi's ``metric`` (default: the type's
    first) through a small module written beside the YAML. Run the model with ``add_bos_token=True``
    to match cofi's prompts (BOS + template); with ``chat_template`` the task holds the user turn and
    the harness applies the model's chat template (:func:`run` with ``chat_template=True``), as cofi
    does; the harness then also puts no space before a choice, as cofi does.
    """
    import yaml

    from cofi.evaluation.tasks import TASK_TYPES

    if task_type not in TASK_TYPES:
        raise LmEvalError(f"suite {name!r}: type {task_type!r} (expected one of {', '.join(TASK_TYPES)})")
    kind = TASK_TYPES[task_type]
    metric = metric or kind.metrics[0]
    if metric not in kind.metrics:
        raise LmEvalError(f"suite {name!r}: metric {metric!r} (type {task_type!r} has {', '.join(kind.metrics)})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(path).resolve())}},
        "test_split": "test",
        "doc_to_text": CHAT_USER_TURN if chat_template else jinja_template(template),
    }
    task |= kind.lm_eval_fields(max_gen_toks, metric)
    scorer = task.pop("process_results", None)
    text = yaml.safe_dump(task, sort_keys=False)
    if scorer is not None:  # a tag safe_dump cannot write: the harness resolves it beside this file
        _write_scoring_module(directory)
        text += f"process_results: !function {SCORING_MODULE}.{scorer}\n"
    out = directory / f"{name}.yaml"
    out.write_text(text)
    return out


def parse_mapping(text: str) -> dict[str, dict[str, list[dict]]]:
    """``{"spec": {task: [harness task, ...]}, "vers": {"know": [...], "reason": [...], "instruct": [...]}}``;
    an entry is a task name or ``{"task": name, "metric": "acc_norm,none"}``."""
    from cofi.evaluation.metrics import VERSATILITY_DIMENSIONS

    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as error:
        raise LmEvalError(f"--tasks: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(mapping, dict) or set(mapping) - {"spec", "vers"}:
        raise LmEvalError('--tasks: expected {"spec": {...}, "vers": {...}}')
    missing = [d for d in VERSATILITY_DIMENSIONS if d not in mapping.get("vers", {})]
    if missing:
        raise LmEvalError(f"--tasks: vers needs harness tasks for {missing}")
    parsed = {}
    for group in ("spec", "vers"):
        parsed[group] = {}
        for name, entries in mapping.get(group, {}).items():
            entries = entries if isinstance(entries, list) else [entries]
            if not entries:
                raise LmEvalError(f"--tasks: {group}.{name} names no harness task")
            parsed[group][name] = [e if isinstance(e, dict) else {"task": e, "metric": None} for e in entries]
    return parsed


def primary_metric(result: dict, task: str, metric: str | None) -> float:
    """The chosen metric of one task's results, or its only/first non-stderr metric."""
    if metric is not None:
        if metric not in result:
            raise LmEvalError(f"lm-eval task {task!r} has no metric {metric!r} (it has {sorted(k for k in result if k not in NOT_METRICS)})")
        return float(result[metric])
    candidates = [k for k, v in result.items() if k not in NOT_METRICS and "_stderr" not in k and isinstance(v, (int, float))]
    if not candidates:
        raise LmEvalError(f"lm-eval task {task!r} reported no metric")
    return float(result[candidates[0]])


def scores_from_results(results: dict, mapping: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Spec and versatility scores in percent from ``simple_evaluate(...)["results"]``."""
    out = {}
    for group, names in mapping.items():
        out[group] = {}
        for name, entries in names.items():
            values = []
            for entry in entries:
                if entry["task"] not in results:
                    raise LmEvalError(f"lm-eval returned no results for task {entry['task']!r}")
                values.append(primary_metric(results[entry["task"]], entry["task"], entry["metric"]))
            out[group][name] = 100.0 * sum(values) / len(values)
    return out["spec"], out["vers"]


def run(model_dir: str, mapping: dict, include_path: str | None, dtype: str, device: str, batch_size: int,
        limit: int | None, trust_remote_code: bool = False, chat_template: bool = False) -> dict:
    """Run the harness on ``model_dir``; returns its raw ``results`` dict."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise LmEvalError("lm-eval is not installed (pip install 'cofi[lm-eval]')") from None
    tasks = sorted({e["task"] for names in mapping.values() for entries in names.values() for e in entries})
    # A chat template writes its own BOS where the model wants one; cofi's string prompts start with BOS.
    model_args = {"pretrained": str(model_dir), "dtype": dtype, "device": device, "add_bos_token": not chat_template,
                  "trust_remote_code": trust_remote_code}
    output = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=tasks, batch_size=batch_size, limit=limit,
                                     task_manager=TaskManager(include_path=include_path) if include_path else None,
                                     log_samples=False, apply_chat_template=chat_template)
    return output["results"]
