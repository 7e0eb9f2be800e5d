import math

import pytest
import torch

from cofi.evaluation.generation import choice_loglikelihoods, generate, in_chunks
from cofi.evaluation.tasks import TASK_TYPES
from cofi.data.prompts import Prompter

from conftest import TEMPLATE


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_model, tokenizer, tiny_world):
    records = tiny_world["instruct_test"][:6] + tiny_world["know_test"][:3]  # prompts of several lengths
    prompter = Prompter(tokenizer, TEMPLATE)
    assert len({len(prompter.text(r).split()) for r in records}) > 2
    batched = generate(tiny_model, prompter, records, batch_size=9, max_new_tokens=5)
    single = [generate(tiny_model, prompter, [r], batch_size=1, max_new_tokens=5)[0] for r in records]
    assert batched == single


class SmallGPU(torch.nn.Module):
    """A model whose forward runs out of GPU memory above ``most`` rows (the rest of it is the tiny model's)."""

    def __init__(self, model, most: int):
        super().__init__()
        self.model, self.most, self.rows = model, most, []

    def forward(self, input_ids, **kwargs):
        self.rows.append(len(input_ids))
        if len(input_ids) > self.most:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(input_ids=input_ids, **kwargs)

    @property
    def device(self):
        return self.model.device


def test_a_batch_that_runs_out_of_gpu_memory_is_halved_until_it_fits(tiny_model, tokenizer, tiny_world, capsys):
    chunks = []

    def run(start, stop):
        if stop - start > 3:
            raise torch.OutOfMemoryError("simulated")
        chunks.append((start, stop))

    in_chunks(10, 8, run)
    assert chunks == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]  # 8 -> 4 -> 2, then 2 to the end
    assert "going on with batches of 2" in capsys.readouterr().err
    with pytest.raises(torch.OutOfMemoryError):
        in_chunks(3, 4, lambda start, stop: (_ for _ in ()).throw(torch.OutOfMemoryError("never fits")))
    records = [{**r, "choices": ["red", "blue", "green"]} for r in tiny_world["know_test"][:5]]
    prompter = Prompter(tokenizer, TEMPLATE)
    small = SmallGPU(tiny_model, most=4)
    assert choice_loglikelihoods(small, prompter, records, batch_size=16) == \
        choice_loglikelihoods(tiny_model, prompter, records, batch_size=4)
    assert small.rows == [15, 8, 4, 4, 4, 3]  # all 15 pairs, 8, then batches of 4


@torch.no_grad()
def test_choice_loglikelihood_matches_a_hand_computation(tiny_model, tokenizer):
    record, choices = {"instruction": "color", "input": "e01"}, ["red", "blue green"]
    prompter = Prompter(tokenizer, TEMPLATE)
    scores = choice_loglikelihoods(tiny_model, prompter, [{**record, "choices": choices}], batch_size=4)[0]
    for choice, score in zip(choices, scores):
        prompt_ids = [tokenizer.bos_token_id] + tokenizer.encode("color e01 =", add_special_tokens=False)
        assert prompter.prompt_ids(record) == prompt_ids
        ids = prompt_ids + tokenizer.encode(choice, add_special_tokens=False)
        logprobs = torch.log_softmax(tiny_model(torch.tensor([ids])).logits[0], dim=-1)
        expected = sum(logprobs[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))
        assert score == pytest.approx(expected, abs=1e-4)
    assert all(s < 0 for s in scores)


def test_multiple_choice_accuracy_follows_the_likelihoods(tiny_model, tokenizer, tiny_world):
    records = tiny_world["know_test"]
    prompter = Prompter(tokenizer, TEMPLATE)
    result = TASK_TYPES["multiple_choice"].score(tiny_model, prompter, records, "accuracy", 8)
    loglik = choice_loglikelihoods(tiny_model, prompter, records, 8)
    best = [r["choices"][max(range(4), key=s.__getitem__)] for r, s in zip(records, loglik)]
    assert result["predictions"] == best
    hits = sum(b == r["output"] for b, r in zip(best, records))
    assert math.isclose(result["score"], 100 * hits / len(records))
    assert result["items"] == [float(b == r["output"]) for b, r in zip(best, records)]  # each item, in order


def test_generation_suite_scores_references_as_perfect(tiny_model, tokenizer, tiny_world, monkeypatch):
    records = tiny_world["rotate_test"]
    monkeypatch.setattr("cofi.evaluation.generation.generate", lambda *a, **k: [r["output"] for r in records])
    result = TASK_TYPES["generation"].score(tiny_model, Prompter(tokenizer, TEMPLATE), records, "exact_match", 8)
    assert result["score"] == 100.0
    assert result["items"] == [1.0] * len(records)
    wrong_first = [records[1]["output"]] + [r["output"] for r in records[1:]]
    monkeypatch.setattr("cofi.evaluation.generation.generate", lambda *a, **k: wrong_first)
    result = TASK_TYPES["generation"].score(tiny_model, Prompter(tokenizer, TEMPLATE), records, "exact_match", 8)
    assert result["items"] == [0.0] + [1.0] * (len(records) - 1)
    assert math.isclose(result["score"], 100 * (len(records) - 1) / len(records))


def test_an_answer_may_take_the_suites_length_or_its_types_room_past_the_reference(tiny_model, tokenizer,
                                                                                     tiny_world, monkeypatch):
    """Exact answers get one token past the longest reference; a number gets room for its working (256 past it, as
    the harness's GSM8K); IFEval-style items 96 tokens; a suite's max_new_tokens overrides each, and reaches
    generation."""
    records, prompter = tiny_world["rotate_test"], Prompter(tokenizer, TEMPLATE)
    longest = max(len(prompter.response_ids(r["output"])) for r in records)
    generation, instructions = TASK_TYPES["generation"], TASK_TYPES["instruction_following"]
    assert generation.max_new_tokens(prompter, records, "exact_match") == longest + 1
    assert generation.max_new_tokens(prompter, records, "number") == longest + 256
    assert instructions.max_new_tokens(prompter, records, "ifeval_strict") == 96
    assert [kind.max_new_tokens(prompter, records, metric, 700) for kind, metric in (
        (generation, "number"), (generation, "rouge_l"), (instructions, "ifeval_strict"))] == [700] * 3
    asked = []
    monkeypatch.setattr("cofi.evaluation.generation.generate",
                        lambda model, prompter, records, batch, length, options: asked.append(length) or
                        [r["output"] for r in records])
    generation.score(tiny_model, prompter, records, "exact_match", 8)
    generation.score(tiny_model, prompter, records, "exact_match", 8, None, 12)
    generation.score(tiny_model, prompter, records, "exact_match", 8, None, 700)
    # at most what the model's positions hold after the longest prompt (the tiny model has 32)
    assert asked == [longest + 1, 12, 32 - max(prompter.prompt_lengths(records))]


def test_one_evaluation_job_scores_several_models_and_splits_as_single_jobs_do(tokenizer, tiny_world, tmp_path):
    """The evaluation job of a run (every seed, test and validation split, one process) writes the files one
    job per model and split writes, byte for byte, each with its own model's scores."""
    import json

    from cofi.cli import main
    from cofi.jobs.evaluate import EvaluateJob
    from cofi.jobs.interface import JobSpecError, job_from
    from cofi.models.loading import build_llama, save_model

    from conftest import TINY_ARCH

    for seed in (0, 1):
        save_model(build_llama(len(tokenizer), TINY_ARCH, seed=seed), tokenizer, tmp_path / f"seed{seed}")
    kinds = {"rotate": ("generation", "exact_match"), "know": ("multiple_choice", "accuracy"),
             "reason": ("generation", "exact_match"), "instruct": ("generation", "exact_match")}
    suites = {}
    for split, part in (("test", slice(0, 4)), ("val", slice(4, 8))):
        for name in kinds:
            items = tiny_world[f"{name}_test"][part]
            (tmp_path / f"{name}_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
        suite = {name: {"path": str(tmp_path / f"{name}_{split}.jsonl"), "type": kind, "metric": metric}
                 for name, (kind, metric) in kinds.items()}
        suites[split] = {"spec": {"rotate": suite.pop("rotate")}, "vers": suite}
    common = ["--prompt", json.dumps({"template": TEMPLATE}), "--device", "cpu", "--batch-size", "4"]

    def scoring(seed, split, out):
        return {"model": str(tmp_path / f"seed{seed}"), "suites": suites[split],
                "labels": {"method": "full", "seed": seed, "split": split},
                "out": str(out / f"seed{seed}_{split}.json"), "predictions": str(out / f"seed{seed}_{split}_p.json")}

    together, alone = tmp_path / "together", tmp_path / "alone"
    pairs = [(seed, split) for seed in (0, 1) for split in ("test", "val")]
    assert main(["evaluate", *common, "--scorings", json.dumps([scoring(s, sp, together) for s, sp in pairs])]) == 0
    for seed, split in pairs:
        assert main(["evaluate", *common, "--scorings", json.dumps([scoring(seed, split, alone)])]) == 0
    for name in sorted(path.name for path in alone.iterdir()):
        assert (together / name).read_bytes() == (alone / name).read_bytes(), name
    # the two models answer differently, so a file holding the other model's scores would be caught
    assert (alone / "seed0_test_p.json").read_text() != (alone / "seed1_test_p.json").read_text()
    # each suite's items are kept, in order, and their mean is the suite's score
    written = json.loads((alone / "seed0_test.json").read_text())
    for group in ("spec", "vers"):
        for name, values in written["item_scores"][group].items():
            assert len(values) == written["items"][name] == 4
            score = written["spec"][name] if group == "spec" else written[name]
            assert math.isclose(100 * sum(values) / len(values), score), name
    assert json.loads((together / "seed1_val.json").read_text())["model"] == str(tmp_path / "seed1")
    short = {k: v for k, v in scoring(1, "test", together).items() if k != "labels"}  # refused before any work
    with pytest.raises(JobSpecError, match=r"key scorings \(--scorings\)\[1\]: missing key\(s\) \['labels'\]"):
        job_from(EvaluateJob, {"scorings": [scoring(0, "test", together), short], "prompt": {}}, "job")


def test_a_model_bigger_than_one_gpu_is_spread_over_the_gpus_for_inference(tiny_model, tokenizer, tmp_path):
    from cofi.models.loading import save_model, spreads
    from cofi.models.weights import stored_bytes

    save_model(tiny_model, tokenizer, tmp_path / "model")
    size = sum(p.numel() for p in tiny_model.parameters()) * 4
    assert stored_bytes(tmp_path / "model") == size and stored_bytes(tmp_path / "model", torch.bfloat16) == size // 2
    gib = 2**30
    assert spreads(66 * gib, 79 * gib, 8)  # 33B in bf16 on 80 GB GPUs
    assert not spreads(13 * gib, 79 * gib, 8) and not spreads(66 * gib, 79 * gib, 1)


def test_an_evaluation_at_bf16_scores_under_autocast_and_fp32_does_not(tiny_model, tokenizer, tiny_world, tmp_path,
                                                                      monkeypatch):
    """compute.precision reaches evaluation: bf16 scores every suite under CPU autocast (as training computes),
    fp32 in plain float32; the scores stay close on the tiny model."""
    import json

    import torch

    from cofi.evaluation.tasks import TASK_TYPES
    from cofi.jobs.evaluate import EvaluateJob
    from cofi.jobs.interface import job_from
    from cofi.models.loading import save_model

    save_model(tiny_model, tokenizer, tmp_path / "model")
    kinds = {"know": "multiple_choice", "reason": "generation", "instruct": "generation"}
    for name in kinds:
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tiny_world[f"{name}_test"][:8]))
    suites = {"spec": {}, "vers": {name: {"path": str(tmp_path / f"{name}.jsonl"), "type": kind,
                                          "metric": "accuracy" if kind == "multiple_choice" else "exact_match"}
                                   for name, kind in kinds.items()}}
    seen, score = [], TASK_TYPES["multiple_choice"].score

    def spy(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return score(*args, **kwargs)

    monkeypatch.setattr(TASK_TYPES["multiple_choice"], "score", spy)
    results = {}
    for precision in ("bf16", "fp32"):
        scoring = {"model": str(tmp_path / "model"), "suites": suites, "labels": {"method": "base"},
                   "out": str(tmp_path / f"{precision}.json")}
        job = job_from(EvaluateJob, {"scorings": [scoring], "prompt": {"template": TEMPLATE}, "device": "cpu",
                                     "precision": precision}, "job", log=lambda *_: None)
        results[precision] = job.execute()[0]
    assert seen == [torch.bfloat16, torch.float32]
    assert abs(results["bf16"]["know"] - results["fp32"]["know"]) <= 25.0  # two of eight items at most
