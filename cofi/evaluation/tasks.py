"""Task types, one class each: how a suite's data is read and checked, how a model is scored on it,
and how it is exported to lm-evaluation-harness. A suite (a speciality task or a versatility
dimension) names its type and metric in the config; everything type-specific lives here.

Importing this module is light (no torch): scoring imports :mod:`cofi.evaluation.generation` when it runs.
"""

from __future__ import annotations

from cofi.errors import InputError


class TaskTypeError(InputError):
    """An unknown task type or a metric the type does not have; the message names the config key."""


class TaskType:
    """Base class: ``name``, the ``metrics`` it can be scored with (the first is a suite's default), and whether
    items carry choices."""

    name: str = ""
    metrics: tuple[str, ...] = ()
    multiple_choice: bool = False

    def check_metric(self, key: str, metric: str) -> None:
        if metric not in self.metrics:
            raise TaskTypeError(f"config key {key}.metric: unknown metric {metric!r} for type {self.name!r} "
                                f"(expected one of {list(self.metrics)})")

    verifiable: bool = False  # items carry IFEval checks

    def read(self, path) -> list[dict]:
        """The items of a test or validation file, validated (training files are always instruction data)."""
        from cofi.data.records import read_jsonl

        return read_jsonl(path, multiple_choice=self.multiple_choice, verifiable=self.verifiable)

    def score(self, model, prompter, records: list[dict], metric: str, batch_size: int,
              generation: dict | None = None, max_new_tokens: int | None = None) -> dict:
        """``{"score": 0-100, "items": [0-1 per item], "predictions": [...]}`` of ``model`` on ``records``, prompts
        made by ``prompter`` (:class:`cofi.data.prompts.Prompter`); ``generation``: decoding options over the model's
        generation config; ``max_new_tokens``: the suite's answer length (None: :meth:`max_new_tokens`'s default).
        The score is the items' mean, in percent: the items let the tables bootstrap over them."""
        raise TypeError(f"{type(self).__name__} does not score")

    def score_response(self, response: str, record: dict, metric: str) -> float:
        """One generated response's score in [0, 1] (the lm-eval export scores each harness response so)."""
        raise TypeError(f"{type(self).__name__} does not score single responses")

    def max_new_tokens(self, prompter, records: list[dict], metric: str, configured: int | None = None,
                       context: int | None = None) -> int:
        """Tokens a response may take: the suite's ``max_new_tokens`` where configured, else the type's default (0:
        nothing is generated); at most what a model of ``context`` positions holds after the longest prompt."""
        return 0

    def lm_eval_fields(self, max_gen_toks: int, metric: str) -> dict:
        """The harness task's fields that make it score as :meth:`score` does. A ``process_results`` entry
        names the cofi metric the harness scores each response with (:mod:`cofi.evaluation.lm_eval`)."""
        raise TypeError(f"{type(self).__name__} has no lm-eval export")


def context_of(model) -> int | None:
    """The positions a model holds (prompt and answer together), where its config says."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def fitted(length: int, prompter, records: list[dict], context: int | None) -> int:
    """``length`` new tokens, or fewer where the longest prompt and the answer would not fit ``context`` positions
    (the harness refuses more; past them a model's answer means little)."""
    if context is None:
        return length
    return max(1, min(length, context - max(prompter.prompt_lengths(records))))


def scored(items: list[float], predictions: list[str]) -> dict:
    """A suite's result: the items' mean in percent, each item's score in [0, 1], the predictions (a generation suite
    adds ``lenient``: each item's score with the answer allowed anywhere in the response)."""
    if not items:
        raise ValueError("a suite without items has no score")
    return {"score": 100.0 * sum(items) / len(items), "items": items, "predictions": predictions}


class Generation(TaskType):
    """Greedy generation, scored against ``output`` by exact match, ROUGE-L, or the answer's number."""

    name = "generation"
    metrics = ("exact_match", "rouge_l", "number")
    reasoning_tokens = 256  # past the longest reference, for ``number``: lm-evaluation-harness's GSM8K max_gen_toks

    def score(self, model, prompter, records, metric, batch_size, generation=None, max_new_tokens=None):
        from cofi.evaluation import metrics
        from cofi.evaluation.generation import generate

        references = [r["output"] for r in records]
        predictions = generate(model, prompter, records, batch_size,
                               self.max_new_tokens(prompter, records, metric, max_new_tokens, context_of(model)),
                               generation)
        return scored(metrics.item_scores(metric, predictions, references), predictions) | {
            "lenient": metrics.lenient_item_scores(metric, predictions, references)}

    def max_new_tokens(self, prompter, records, metric, configured=None, context=None):
        # Room for the longest reference and its end token; longer answers cannot match anyway. A number
        # may come after its working (GSM8K-style reasoning): the harness's GSM8K room past the reference.
        if configured is None:
            configured = max(len(prompter.response_ids(r["output"])) for r in records) + (
                self.reasoning_tokens if metric == "number" else 1)
        return fitted(configured, prompter, records, context)

    def score_response(self, response, record, metric):
        from cofi.evaluation import metrics

        return metrics.GENERATION_METRICS[metric](response, record["output"])

    def lm_eval_fields(self, max_gen_toks, metric):
        # The harness stops at these and at the model's EOS; the response is scored by cofi's own metric.
        return {"output_type": "generate_until", "doc_to_target": "{{output}}",
                "generation_kwargs": {"until": ["</s>"], "do_sample": False, "max_gen_toks": max_gen_toks},
                "process_results": metric,
                "metric_list": [{"metric": metric, "aggregation": "mean", "higher_is_better": True}]}


class MultipleChoice(TaskType):
    """The choice with the highest summed log-probability of its tokens, scored by accuracy."""

    name = "multiple_choice"
    metrics = ("accuracy",)
    multiple_choice = True

    def score(self, model, prompter, records, metric, batch_size, generation=None, max_new_tokens=None):
        from cofi.evaluation.generation import choice_loglikelihoods

        loglik = choice_loglikelihoods(model, prompter, records, batch_size)
        predicted = [max(range(len(s)), key=s.__getitem__) for s in loglik]
        answers = [r["answer"] for r in records]
        return scored([float(p == a) for p, a in zip(predicted, answers)],
                      [r["choices"][p] for r, p in zip(records, predicted)])

    def lm_eval_fields(self, max_gen_toks, metric):
        return {"output_type": "multiple_choice", "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}",
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}


class InstructionFollowing(TaskType):
    """IFEval-style: a response is right when it passes every check its item lists (:mod:`cofi.evaluation.instructions`,
    the harness's checkers); the score is the share of such items (IFEval's prompt-level strict accuracy)."""

    name = "instruction_following"
    metrics = ("ifeval_strict",)
    verifiable = True
    response_tokens = 96  # a few sentences or bullets: what the suites' writing tasks ask for

    def score(self, model, prompter, records, metric, batch_size, generation=None, max_new_tokens=None):
        from cofi.evaluation.generation import generate

        predictions = generate(model, prompter, records, batch_size,
                               self.max_new_tokens(prompter, records, metric, max_new_tokens, context_of(model)),
                               generation)
        return scored([self.score_response(p, r, metric) for p, r in zip(predictions, records)], predictions)

    def max_new_tokens(self, prompter, records, metric, configured=None, context=None):
        return fitted(self.response_tokens if configured is None else configured, prompter, records, context)

    def score_response(self, response, record, metric):
        from cofi.evaluation.instructions import follows

        return float(follows(response, record["checks"]))

    def lm_eval_fields(self, max_gen_toks, metric):
        return Generation().lm_eval_fields(max_gen_toks, metric) | {"doc_to_target": ""}


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (Generation(), MultipleChoice(), InstructionFollowing())}


def task_type(key: str, name: str) -> TaskType:
    if name not in TASK_TYPES:
        raise TaskTypeError(f"config key {key}.type: unknown task type {name!r} (expected one of {sorted(TASK_TYPES)})")
    return TASK_TYPES[name]
