"""Scoring (pure): per-item metrics and the Spec / Vers / Uni aggregation. All scores in [0, 100]."""

from __future__ import annotations

VERSATILITY_DIMENSIONS = ("know", "reason", "instruct")


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive comparison form."""
    return " ".join(text.lower().split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def _longest_common_subsequence(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of whitespace tokens after :func:`normalize`.

    The ``rouge-score`` package's formula, float for float (tests/evaluation/test_metrics.py checks it against the
    package), computed here because importing the package pulls in nltk: about 2 s of every evaluation
    job's start-up, more than its scoring. Whitespace tokens, not the package's default tokenizer, which
    drops every non-ASCII character (fatal for Chinese or accented text)."""
    target, candidate = normalize(reference).split(), normalize(prediction).split()
    if not target or not candidate:
        return 0.0
    common = _longest_common_subsequence(target, candidate)
    precision, recall = common / len(candidate), common / len(target)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


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


def _contains(prediction: str, reference: str) -> bool:
    """The normalised reference inside the normalised prediction, on word boundaries ("4" is not found in "42")."""
    import re

    target = normalize(reference)
    return bool(target) and re.search(rf"(?<!\w){re.escape(target)}(?!\w)", normalize(prediction)) is not None


def _numbers(text: str) -> list[float]:
    import re

    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]


def lenient(metric: str, prediction: str, reference: str) -> float:
    """The item's score with the answer allowed anywhere in the response: the normalised reference found in it
    (exact_match; rouge_l counts it as 1, else its own score), or the reference's number among the response's
    numbers (number). Never below the strict score: what it adds is the answers said in another form."""
    if metric == "number":
        return float(_last_number(reference) in _numbers(prediction))
    strict = GENERATION_METRICS[metric](prediction, reference)
    return max(strict, float(_contains(prediction, reference)))


def item_scores(metric: str, predictions: list[str], references: list[str]) -> list[float]:
    """Each item's score in [0, 1] under a generation metric."""
    if len(predictions) != len(references) or not references:
        raise ValueError("predictions and references must be non-empty and of equal length")
    item = GENERATION_METRICS[metric]
    return [item(p, r) for p, r in zip(predictions, references)]


def lenient_item_scores(metric: str, predictions: list[str], references: list[str]) -> list[float]:
    """Each item's :func:`lenient` score in [0, 1]."""
    if len(predictions) != len(references) or not references:
        raise ValueError("predictions and references must be non-empty and of equal length")
    return [lenient(metric, p, r) for p, r in zip(predictions, references)]


def corpus_score(metric: str, predictions: list[str], references: list[str]) -> float:
    """Mean item score of a generation metric, as a percentage."""
    scores = item_scores(metric, predictions, references)
    return 100.0 * sum(scores) / len(scores)


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
