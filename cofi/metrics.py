"""Scoring (pure): per-item metrics and the Spec / Vers / Uni aggregation. All scores in [0, 100]."""

from __future__ import annotations

from functools import cache

VERSATILITY_DIMENSIONS = ("know", "reason", "instruct")


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive comparison form."""
    return " ".join(text.lower().split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


class _WhitespaceTokenizer:
    """rouge-score's default tokenizer drops every non-ASCII character (fatal for Chinese or
    accented text); whitespace tokens after :func:`normalize` keep them."""

    def tokenize(self, text: str) -> list[str]:
        return normalize(text).split()


@cache
def _rouge():
    from rouge_score import rouge_scorer  # pulls in nltk: only when a ROUGE score is asked for

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WhitespaceTokenizer())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of tokens), via the ``rouge-score`` package."""
    return _rouge().score(reference, prediction)["rougeL"].fmeasure


def _last_number(text: str) -> float | None:
    import re

    numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(numbers[-1]) if numbers else None


def number(prediction: str, reference: str) -> float:
    """The last number of the prediction equals the reference's (GSM8K-style answer extraction)."""
    answer = _last_number(reference)
    if answer is None:
        raise ValueError(f"reference {reference!r} has no number to compare with")
    return float(_last_number(prediction) == answer)


GENERATION_METRICS = {"exact_match": exact_match, "rouge_l": rouge_l, "number": number}


def corpus_score(metric: str, predictions: list[str], references: list[str]) -> float:
    """Mean item score of a generation metric, as a percentage."""
    if len(predictions) != len(references) or not references:
        raise ValueError("predictions and references must be non-empty and of equal length")
    item = GENERATION_METRICS[metric]
    return 100.0 * sum(item(p, r) for p, r in zip(predictions, references)) / len(references)


def accuracy(predicted: list[int], answers: list[int]) -> float:
    if len(predicted) != len(answers) or not answers:
        raise ValueError("predicted and answers must be non-empty and of equal length")
    return 100.0 * sum(int(p == a) for p, a in zip(predicted, answers)) / len(answers)


def aggregate(spec: dict[str, float], versatility: dict[str, float]) -> dict:
    """Vers = mean of Know, Reason, Instruct; Uni per task = (Spec + Vers) / 2."""
    missing = [d for d in VERSATILITY_DIMENSIONS if d not in versatility]
    if missing:
        raise ValueError(f"versatility scores lack {missing}")
    vers = sum(versatility[d] for d in VERSATILITY_DIMENSIONS) / len(VERSATILITY_DIMENSIONS)
    return {
        "spec": dict(spec),
        **{d: versatility[d] for d in VERSATILITY_DIMENSIONS},
        "vers": vers,
        "uni": {task: (score + vers) / 2 for task, score in spec.items()},
    }
