import pytest

from cofi.evaluation import metrics


def test_exact_match_ignores_case_and_spacing():
    assert metrics.exact_match(" 1  2 ", "1 2") == 1.0
    assert metrics.exact_match("Paris", "paris") == 1.0
    assert metrics.exact_match("1 2", "1 3") == 0.0


def test_rouge_l_is_lcs_f1():
    # LCS("a b c", "a c") = 2: precision 2/3, recall 1, F1 = 0.8
    assert metrics.rouge_l("a b c", "a c") == pytest.approx(0.8)
    assert metrics.rouge_l("baker in paris", "baker in paris") == 1.0
    assert metrics.rouge_l("", "baker") == 0.0


def test_rouge_l_equals_the_rouge_score_package_float_for_float():
    import random

    from rouge_score import rouge_scorer

    class Whitespace:  # the package on the tokens cofi compares
        def tokenize(self, text):
            return metrics.normalize(text).split()

    package = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Whitespace())
    rng = random.Random(0)
    words = ["a", "B", "c", "d", "été", "e"]
    pairs = [(" ".join(rng.choices(words, k=rng.randint(0, 9))), " ".join(rng.choices(words, k=rng.randint(0, 9))))
             for _ in range(500)]
    for prediction, reference in pairs:
        assert metrics.rouge_l(prediction, reference) == package.score(reference, prediction)["rougeL"].fmeasure, \
            (prediction, reference)


def test_rouge_l_keeps_non_ascii_tokens():
    assert metrics.rouge_l("金融 分析", "金融 分析") == 1.0
    assert metrics.rouge_l("café", "cafe") == 0.0


def test_corpus_score_is_a_percentage():
    assert metrics.corpus_score("exact_match", ["a", "b", "c", "d"], ["a", "b", "x", "y"]) == 50.0
    with pytest.raises(ValueError):
        metrics.corpus_score("exact_match", ["a"], [])


def test_accuracy():
    assert metrics.accuracy([0, 1, 2], [0, 1, 0]) == pytest.approx(200 / 3)


def test_aggregate_vers_and_uni():
    scores = metrics.aggregate({"bio": 80.0, "rotate": 20.0}, {"know": 90.0, "reason": 60.0, "instruct": 30.0})
    assert scores["vers"] == 60.0
    assert scores["uni"] == {"bio": 70.0, "rotate": 40.0}
    assert (scores["know"], scores["reason"], scores["instruct"]) == (90.0, 60.0, 30.0)


def test_aggregate_needs_all_three_dimensions():
    with pytest.raises(ValueError, match="instruct"):
        metrics.aggregate({"bio": 1.0}, {"know": 1.0, "reason": 1.0})


def test_the_lenient_score_finds_the_reference_inside_a_longer_answer():
    from cofi.evaluation.metrics import lenient, lenient_item_scores

    said_otherwise = "Sure! The capital of Zembla is  Paris, of course."
    assert metrics.exact_match(said_otherwise, "paris") == 0.0 and lenient("exact_match", said_otherwise, "paris") == 1.0
    assert lenient("exact_match", "b c a", "b c a") == 1.0  # never below the strict score
    assert lenient("exact_match", "the answer is 42", "4") == 0.0  # whole words only
    assert lenient("exact_match", "nothing like it", "paris") == 0.0
    assert lenient("rouge_l", said_otherwise, "Paris") == 1.0
    assert lenient("rouge_l", "red green", "red blue") == metrics.rouge_l("red green", "red blue") == 0.5
    # a number anywhere in the response, where the strict score takes the last one
    working = "12 apples, then 3 more: 15. Recount: 12 + 3 = 16"
    assert lenient("number", working, "15") == 1.0 and metrics.number(working, "15") == 0.0
    assert lenient("number", "1,200 in all", "1200") == 1.0 and lenient("number", "about 7", "8") == 0.0
    assert lenient_item_scores("exact_match", [said_otherwise, "no"], ["paris", "yes"]) == [1.0, 0.0]
