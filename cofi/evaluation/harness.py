"""Suites that are lm-evaluation-harness tasks (MMLU, GSM8K, IFEval, ... or task YAMLs of one's own), scored
through the harness's Python API on a model already loaded, each item's result kept.

A harness suite is ``{"lm_eval": [task or group, ...], "num_fewshot": n | None, "metric": "name[,filter]" | None,
"include": directory | None}``. Its score is the mean of its items' metric over every leaf task of the names given
(a group such as ``mmlu`` counts each subject by its size, as the harness's own group score does), in percent, and
its items are those per-item values in (task, document) order, so the tables bootstrap over them as over any suite.

The start-up check (:func:`check_suites`) reads the harness's task index only (no data, no model): unknown names,
metrics and filters are config errors that name the key.
"""

from __future__ import annotations

import difflib
import functools
import numbers

from cofi.errors import InputError

NO_FILTER = "none"  # the harness's name of the unfiltered responses


class HarnessError(InputError):
    """A harness suite the harness cannot serve as configured; the message names the config key."""


def is_harness(suite: dict) -> bool:
    """The suite (an evaluation job's or a config entry's) names harness tasks."""
    return bool(suite.get("lm_eval"))


def parse_metric(metric: str | None) -> tuple[str | None, str | None]:
    """``"exact_match,strict-match"`` -> (metric, filter); either may be None (each task's first)."""
    if metric is None:
        return None, None
    name, _, which = metric.partition(",")
    return name, which or None


@functools.lru_cache(maxsize=4)
def task_manager(include: tuple[str, ...] = ()):
    """The harness's task index with the given directories of one's own task YAMLs (built once per process: it
    reads every task YAML the harness ships, some seconds)."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise HarnessError("lm-eval is not installed (pip install 'cofi[lm-eval]')") from None
    return TaskManager(include_path=list(include) or None)


def includes(suites) -> tuple[str, ...]:
    return tuple(sorted({suite["include"] for suite in suites if suite.get("include")}))


def leaf_tasks(index: dict, name: str, key: str) -> list:
    """The index entries of the tasks a name stands for: a task itself, a group's tasks, a tag's."""
    from lm_eval.tasks._index import Kind

    entry = index.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(index), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise HarnessError(f"config key {key}.lm_eval: the harness has no task, group or tag {name!r}{hint}; a task "
                           f"of your own needs its YAML's directory in {key}.include")
    if entry.kind == Kind.TAG:
        return [leaf for member in sorted(entry.tags) for leaf in leaf_tasks(index, member, key)]
    if entry.kind == Kind.GROUP:
        children = entry.cfg.get("task") or []
        children = children if isinstance(children, list) else [children]
        leaves = []
        for child in children:
            child_name = child.get("task") if isinstance(child, dict) else child
            if isinstance(child, dict) and child_name not in index:
                from lm_eval.tasks._index import Entry

                leaves.append(Entry(name=child_name, kind=Kind.TASK, yaml_path=None, cfg=child))
            else:
                leaves += leaf_tasks(index, child_name, key)
        return leaves
    return [entry]


def task_metrics(entry) -> dict[str, str] | None:
    """{metric: aggregation} of one task (None for a task defined in Python: its metrics are its code's)."""
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY  # what a task YAML listing no metrics gets
    from lm_eval.tasks._index import Kind

    if entry.kind == Kind.PY_TASK:
        return None
    listed = entry.cfg.get("metric_list")
    if not listed:
        return dict.fromkeys(DEFAULT_METRIC_REGISTRY.get(entry.cfg.get("output_type", "generate_until"), ()), "mean")
    return {m["metric"]: m.get("aggregation", "mean") for m in listed}


def task_filters(entry) -> list[str]:
    return [f["name"] for f in entry.cfg.get("filter_list") or []] or [NO_FILTER]


def check_suites(suites: dict[str, dict]) -> None:
    """{config key: harness suite}: every name is a harness task, group or tag, and every leaf task has the metric
    (a per-item one: a mean over items) and the filter. Reads the task index only."""
    if not suites:
        return
    index = task_manager(includes(suites.values())).task_index
    for key, suite in suites.items():
        metric, which = parse_metric(suite.get("metric"))
        for name in suite["lm_eval"]:
            for leaf in leaf_tasks(index, name, key):
                metrics = task_metrics(leaf)
                if metrics is None:
                    continue
                chosen = metric or next(iter(metrics), None)
                if chosen not in metrics:
                    raise HarnessError(f"config key {key}.metric: harness task {leaf.name!r} (of {name!r}) has no "
                                       f"metric {chosen!r} (it has {', '.join(metrics) or 'none'})")
                if metrics[chosen] != "mean":
                    raise HarnessError(f"config key {key}.metric: {chosen!r} of harness task {leaf.name!r} is not an "
                                       f"item's score (the harness aggregates it by {metrics[chosen]!r}); choose a "
                                       f"per-item metric: {', '.join(m for m, a in metrics.items() if a == 'mean')}")
                if which is not None and which not in task_filters(leaf):
                    raise HarnessError(f"config key {key}.metric: harness task {leaf.name!r} has no filter {which!r} "
                                       f"(it has {', '.join(task_filters(leaf))})")


def harness_model(model, model_dir: str, batch_size: int, chat: bool, trust_remote_code: bool = False):
    """The harness's view of a model already loaded (no second copy of the weights). Its tokenizer comes from the
    model's directory through the harness, which makes it start string prompts with BOS as cofi's do (a chat
    template writes its own)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=str(model_dir), batch_size=batch_size, add_bos_token=not chat,
                device=str(model.device), trust_remote_code=trust_remote_code)


def score(lm, suite: dict, chat: bool, system: str | None, limit: int | None = None,
          subset: dict | None = None) -> dict:
    """``{"score", "items", "predictions"}`` of a harness suite (as :meth:`cofi.evaluation.tasks.TaskType.score`),
    through ``simple_evaluate``: the chat template and system turn as cofi's prompts have them; ``limit``: each
    task's first documents only; ``subset`` ({"items", "seed"}): a seeded sample of the suite's pooled documents
    (:func:`cofi.evaluation.subsets.chosen_documents`)."""
    import lm_eval

    from cofi.evaluation.tasks import scored

    manager, tasks, samples = task_manager(includes([suite])), list(suite["lm_eval"]), None
    if subset is not None:
        from cofi.evaluation.subsets import chosen_documents

        leaves = manager.load(tasks)["tasks"]
        sizes = {name: len(task.eval_docs) if limit is None else min(limit, len(task.eval_docs))  # limit: the first
                 for name, task in leaves.items()}
        picked = chosen_documents(sizes, subset["items"], subset["seed"])
        # A task with no document drawn is left out: the harness reads an empty list as "every document".
        tasks = [leaves[name] for name, docs in picked.items() if docs]
        samples, limit = {name: docs for name, docs in picked.items() if docs}, None
    output = lm_eval.simple_evaluate(
        model=lm, tasks=tasks, num_fewshot=suite.get("num_fewshot"), task_manager=manager, limit=limit,
        samples=samples, log_samples=True, apply_chat_template=chat, system_instruction=system or None,
        fewshot_as_multiturn=chat, bootstrap_iters=0)  # cofi's tables bootstrap over the items themselves
    return scored(*item_results(output["samples"], suite.get("metric")))


def item_results(samples: dict[str, list[dict]], metric: str | None) -> tuple[list[float], list[str]]:
    """Each item's metric (in task, then document order) and what the model answered, from the harness's logged
    samples; the chosen filter, else each task's first."""
    name, which = parse_metric(metric)
    items, predictions = [], []
    for task in sorted(samples):
        rows = samples[task]
        chosen = which or rows[0]["filter"]  # the harness logs its filters in their configured order
        kept = sorted((r for r in rows if r["filter"] == chosen), key=lambda r: r["doc_id"])
        if not kept:
            raise HarnessError(f"harness task {task!r} logged no responses under filter {chosen!r}")
        key = name or kept[0]["metrics"][0]
        for row in kept:
            value = row.get(key)
            if not isinstance(value, numbers.Real):  # IFEval's prompt-level metrics are bools
                raise HarnessError(f"harness task {task!r}: metric {key!r} of document {row['doc_id']} is "
                                   f"{type(value).__name__}, not one item's score")
            items.append(float(value))
            predictions.append(_prediction(row))
    return items, predictions


def _prediction(row: dict) -> str:
    """A generated response as it was scored, or the chosen choice's index for log-likelihood tasks."""
    response = row["filtered_resps"]
    response = response[0] if isinstance(response, list) and len(response) == 1 else response
    if isinstance(response, str):
        return response
    if isinstance(response, list) and response and isinstance(response[0], (list, tuple)):
        scores = [choice[0] for choice in response]
        return f"choice {max(range(len(scores)), key=scores.__getitem__)}"
    return str(response)


def tensor_parallel_size(gpus: int, heads: int, kv_heads: int | None = None) -> int:
    """The most of ``gpus`` a model's attention divides among, at least one: vLLM splits the query heads evenly, and
    the key/value heads evenly or each over a whole number of GPUs."""
    kv_heads = kv_heads or heads
    return max(size for size in range(1, max(gpus, 1) + 1)
               if heads % size == 0 and (kv_heads % size == 0 or size % kv_heads == 0))


def vllm_model_args(model_dir: str, gpus: int, heads: tuple[int, int | None], dtype: str, precision: str,
                    batch_size: int, chat: bool, trust_remote_code: bool = False, adapter: str | None = None) -> dict:
    """The harness's ``VLLM`` arguments for one model directory: tensor parallel over the GPUs the job got (a model
    too large for one GPU spreads over them; ``heads``: its query and key/value heads), the weights in the precision
    the config computes in (bf16/fp16, else model.dtype), greedy and seeded, BOS first as cofi's prompts have it (a
    chat template writes its own); a LoRA ``adapter`` served unmerged."""
    precisions = {"bf16": "bfloat16", "fp16": "float16"}
    args = {"pretrained": str(model_dir), "tensor_parallel_size": tensor_parallel_size(gpus, *heads),
            "dtype": precisions.get(precision, dtype), "batch_size": batch_size, "add_bos_token": not chat,
            "trust_remote_code": trust_remote_code, "seed": 0}
    if adapter is not None:  # vLLM's LoRA: the adapter unmerged, at its own rank
        import json
        from pathlib import Path

        rank = json.loads(Path(adapter, "adapter_config.json").read_text())["r"]
        args |= {"lora_local_path": str(adapter), "max_lora_rank": rank}
    return args


# A harness task's prompt is one user turn (its doc_to_text); a longer conversation would lose its earlier turns.
CONVERSATIONS_UNSERVED = ("a conversation with a system turn or more than one exchange cannot be a harness task (its "
                          "prompt is one user turn); score it with evaluation.backend: hf")


def as_harness_suite(name: str, suite: dict, prompter, prompt, folder: str, max_items: int | None,
                     context: int | None = None) -> dict:
    """One of cofi's JSONL suites as a local harness task in ``folder``
    (:func:`cofi.evaluation.lm_eval.write_local_task`), scored by cofi's own metric, with the response length cofi
    gives it (within the model's ``context`` positions: the harness model's ``max_length``); its first ``max_items``
    items only."""
    import json
    from pathlib import Path

    from cofi.evaluation.lm_eval import write_local_task
    from cofi.evaluation.tasks import TASK_TYPES

    from cofi.data.prompts import one_exchange

    kind = TASK_TYPES[suite["type"]]
    records = kind.read(suite["path"])[:max_items]
    if not all(map(one_exchange, records)):
        raise HarnessError(f"{suite['path']}: {CONVERSATIONS_UNSERVED}")
    data = Path(folder, f"{name}.jsonl")
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    task = f"cofi_{name}"
    write_local_task(folder, task, data, suite["type"], prompt.template,
                     max_gen_toks=max(kind.max_new_tokens(prompter, records, suite["metric"],
                                                         suite.get("max_new_tokens"), context), 1),
                     chat_template=prompt.chat_template, metric=suite["metric"])
    return {"lm_eval": [task], "num_fewshot": None, "include": str(folder),
            "metric": "acc" if kind.multiple_choice else suite["metric"]}
