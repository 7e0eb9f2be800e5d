"""The lm-eval bridge: cofi's own suites as local harness tasks score as cofi scores them."""

import json
import os
import subprocess
import sys

import pytest

from cofi.evaluation.subsets import chosen
from cofi.evaluation.lm_eval import LmEvalError, jinja_template, parse_mapping, scores_from_results
from cofi.models.loading import build_llama, save_model
from cofi.config.settings import TrainSettings
from cofi.data.prompts import Prompter
from cofi.training.loop import tokenize_dataset, train

from conftest import REPO, TEMPLATE, TINY_ARCH

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cofi(*args, cwd, module="cofi"):
    env = {**os.environ, **OFFLINE, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_mapping_and_metric_choice():
    mapping = parse_mapping('{"spec": {"fin": ["a", "b"]}, "vers": {"know": "mmlu", "reason": ["gsm8k"],'
                            ' "instruct": [{"task": "ifeval", "metric": "prompt_level_strict_acc,none"}]}}')
    results = {"a": {"alias": "a", "acc,none": 0.5, "acc_stderr,none": 0.1}, "b": {"acc,none": 1.0},
               "mmlu": {"acc,none": 0.25}, "gsm8k": {"exact_match,strict-match": 0.125},
               "ifeval": {"inst_level_strict_acc,none": 0.9, "prompt_level_strict_acc,none": 0.75}}
    spec, vers = scores_from_results(results, mapping)
    assert spec == {"fin": 75.0} and vers == {"know": 25.0, "reason": 12.5, "instruct": 75.0}
    with pytest.raises(LmEvalError, match=r"vers needs harness tasks for \['reason', 'instruct'\]"):
        parse_mapping('{"vers": {"know": ["mmlu"]}}')
    with pytest.raises(LmEvalError, match="has no metric 'acc_norm,none'"):
        scores_from_results(results, parse_mapping('{"vers": {"know": [{"task": "mmlu", "metric": "acc_norm,none"}], '
                                                   '"reason": ["gsm8k"], "instruct": ["ifeval"]}}'))
    assert jinja_template("Q: {instruction} {input} A:") == "Q: {{instruction}} {{input}} A:"


def test_harness_scores_cofi_suites_as_cofi_does(tmp_path, tokenizer, tiny_world):
    # Memorise the test items for a while, so generation scores are far from 0 and from 100.
    model = build_llama(len(tokenizer), TINY_ARCH, seed=0)
    records = [r for split in ("rotate_test", "know_test", "reason_test", "instruct_test") for r in tiny_world[split]]
    train(model, tokenize_dataset(records, Prompter(tokenizer, TEMPLATE), True, 32),
          TrainSettings(lr=3e-3, steps=60, batch_size=16, log_every=1000), 0, 0, tmp_path / "loss.csv",
          log=lambda _: None)
    save_model(model, tokenizer, tmp_path / "model")
    suites = {"rotate": ("rotate_test", "generation"), "know": ("know_test", "multiple_choice"),
              "reason": ("reason_test", "generation"), "instruct": ("instruct_test", "generation")}
    for name, (split, kind) in suites.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in tiny_world[split]))
        cofi("lm-eval-task", "--name", f"cofi_{name}", "--data", str(path), "--type", kind, "--template", TEMPLATE,
             "--max-gen-toks", "8", "--out-dir", str(tmp_path / "tasks"), cwd=tmp_path, module="cofi.devtools")
    spec_suite = {"rotate": {"path": str(tmp_path / "rotate.jsonl"), "type": "generation", "metric": "exact_match"}}
    vers_suites = {name: {"path": str(tmp_path / f"{name}.jsonl"), "type": kind,
                          "metric": "accuracy" if kind == "multiple_choice" else "exact_match"}
                   for name, (_, kind) in suites.items() if name != "rotate"}
    scoring = {"model": str(tmp_path / "model"), "suites": {"spec": spec_suite, "vers": vers_suites},
               "labels": {"method": "base", "seed": None}, "out": str(tmp_path / "cofi.json")}
    cofi("evaluate", "--prompt", json.dumps({"template": TEMPLATE}), "--scorings", json.dumps([scoring]),
         "--device", "cpu", cwd=tmp_path)
    mapping = {"spec": {"rotate": ["cofi_rotate"]},
               "vers": {name: [f"cofi_{name}"] for name in ("know", "reason", "instruct")}}
    cofi("lm-eval", "--model", str(tmp_path / "model"), "--tasks", json.dumps(mapping), "--include-path",
         str(tmp_path / "tasks"), "--labels", '{"method": "base", "seed": null}', "--device", "cpu",
         "--out", str(tmp_path / "harness.json"), cwd=tmp_path, module="cofi.devtools")
    ours, harness = json.loads((tmp_path / "cofi.json").read_text()), json.loads((tmp_path / "harness.json").read_text())
    # The same score format, plus the harness's own record; the bridge keeps no per-item scores (its files get
    # intervals from their seeds alone).
    assert set(ours) - {"item_scores", "item_scores_lenient"} <= set(harness) and "item_scores" not in harness
    assert harness["evaluator"].startswith("lm-eval ")
    # Multiple choice by log-likelihood: item for item the same choices, so the same accuracy.
    assert harness["know"] == pytest.approx(ours["know"])
    for key in ("reason", "instruct"):  # greedy generation, cut at EOS, exact match
        assert harness[key] == pytest.approx(ours[key])
    assert harness["spec"]["rotate"] == pytest.approx(ours["spec"]["rotate"])
    generated = [ours["spec"]["rotate"], ours["reason"], ours["instruct"]]
    assert any(0 < score < 100 for score in generated), generated  # a comparison that can fail
    assert harness["uni"]["rotate"] == pytest.approx((harness["spec"]["rotate"] + harness["vers"]) / 2)
    # The same tasks as harness suites of an evaluation job, mixed with a JSONL suite: item for item the same.
    in_job = harness_suites_agree(tmp_path, scoring, {"rotate": "cofi_rotate", "know": "cofi_know",
                                                      "instruct": "cofi_instruct"}, {"template": TEMPLATE}, ours)
    assert in_job["vers"]["reason"]["path"].endswith("reason.jsonl")  # a JSONL suite beside the harness's
    # evaluation.backend vllm's path: every suite, the JSONL ones as local harness tasks, through the harness's model
    # (here its Hugging Face one: vLLM needs a GPU): item for item the same again.
    through = everything_through_the_harness(tmp_path, scoring, {"template": TEMPLATE})
    for group in ("spec", "vers"):
        assert through["item_scores"][group] == ours["item_scores"][group]


def everything_through_the_harness(tmp_path, scoring: dict, prompt: dict) -> dict:
    from cofi.evaluation.harness import harness_model
    from cofi.jobs.evaluate import EvaluateJob, evaluate_through_harness
    from cofi.jobs.interface import job_from
    from cofi.models.loading import load_model

    def make(model_dir, adapter=None):  # what vllm_factory's model is to the harness, on the CPU
        model, _ = load_model(model_dir)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        return harness_model(model.eval(), model_dir, 16, prompt.get("chat_template", False))

    job = job_from(EvaluateJob, {"scorings": [{**scoring, "out": str(tmp_path / "through.json")}], "prompt": prompt,
                                 "device": "cpu"}, "test")
    evaluate_through_harness(job, make)
    return json.loads((tmp_path / "through.json").read_text())


def harness_suites_agree(tmp_path, scoring: dict, harness_tasks: dict[str, str], prompt: dict, ours: dict) -> dict:
    """``cofi evaluate`` with the suites named in ``harness_tasks`` ({suite: local harness task}) scored through the
    harness: each item's score equals ``ours`` (cofi's own scoring of the same items). Returns the suites used."""
    suites = {group: {name: {"lm_eval": [harness_tasks[name]], "include": str(tmp_path / "tasks")}
                      if name in harness_tasks else suite for name, suite in scoring["suites"][group].items()}
              for group in ("spec", "vers")}
    sample = {"items": 5, "seed": 1}  # search.eval_items: the same seeded sample of each kind of suite
    cofi("evaluate", "--prompt", json.dumps(prompt), "--device", "cpu", "--scorings",
         json.dumps([{**scoring, "suites": suites, "out": str(tmp_path / "in_job.json")},
                     {**scoring, "suites": suites, "out": str(tmp_path / "sample.json"), "subset": sample}]), cwd=tmp_path)
    in_job, sampled = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("in_job", "sample"))
    for group in ("spec", "vers"):
        for name in scoring["suites"][group]:
            assert in_job["item_scores"][group][name] == ours["item_scores"][group][name], (group, name)
            full = ours["item_scores"][group][name]
            assert sampled["item_scores"][group][name] == [full[i] for i in chosen(len(full), 5, 1)], (group, name)
    assert sampled["subset"] == sample and set(sampled["items"].values()) == {5}
    assert {in_job[name] for name in ("know", "reason", "instruct")} == {ours[name] for name in ("know", "reason", "instruct")}
    return suites


def test_harness_scores_a_chat_model_through_its_chat_template_as_cofi_does(tmp_path):
    """A chat model (the tiny GGUF's ChatML template): tasks exported with --chat-template, run with
    lm-eval's --chat-template, score item for item as ``cofi evaluate`` with prompt.chat_template does,
    for each task type and each metric the chat suites use (exact_match, accuracy, number, ifeval_strict)."""
    import random

    from cofi.models.gguf import import_gguf
    from cofi.models.loading import load_model

    from tiny_gguf import write_tiny_gguf

    write_tiny_gguf(tmp_path / "tiny.gguf", context=256)
    import_gguf(tmp_path / "tiny.gguf", tmp_path / "chat", log=lambda _: None)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(2)) for _ in range(12)]
    suites = {
        "echo": ("generation", "exact_match", [{"instruction": "say", "input": w, "output": w} for w in words]),
        "pick": ("multiple_choice", "accuracy",
                 [{"instruction": "pick", "input": w, "output": w, "choices": [w[::-1], w], "answer": 1} for w in words]),
        "add": ("generation", "number", [{"instruction": "add", "input": f"{a} {b}", "output": str(a + b)}
                                         for a, b in ((rng.randint(1, 4), rng.randint(1, 4)) for _ in range(12))]),
        "write": ("instruction_following", "ifeval_strict",
                  [{"instruction": "no comma", "input": w, "output": f"{w[0]},{w[1]}" if i % 2 else w,
                    "checks": [{"id": "punctuation:no_comma", "kwargs": {}}]} for i, w in enumerate(words)]
                  + [{"instruction": "end", "input": w, "output": f"{w} ok",
                      "checks": [{"id": "startend:end_checker", "kwargs": {"end_phrase": "ok"}}]} for w in words[:4]]),
    }
    # Partly memorise the items, so scores fall between 0 and 100.
    model, tokenizer = load_model(tmp_path / "chat")
    records = [r for _, _, items in suites.values() for r in items]
    train(model, tokenize_dataset(records, Prompter(tokenizer, chat=True), True, 64),
          TrainSettings(lr=3e-3, steps=150, batch_size=16, log_every=1000), 0, tokenizer.pad_token_id,
          tmp_path / "loss.csv", log=lambda _: None)
    save_model(model, tokenizer, tmp_path / "model")
    cofi_suites = {"spec": {}, "vers": {}}
    for name, (kind, metric, items) in suites.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in items))
        gen_toks = "96" if kind == "instruction_following" else "16"
        cofi("lm-eval-task", "--name", f"cofi_{name}", "--data", str(path), "--type", kind, "--metric", metric,
             "--chat-template", "--max-gen-toks", gen_toks, "--out-dir", str(tmp_path / "tasks"), cwd=tmp_path,
             module="cofi.devtools")
        group, key = ("spec", name) if name == "echo" else ("vers", {"pick": "know", "add": "reason", "write": "instruct"}[name])
        cofi_suites[group][key] = {"path": str(path), "type": kind, "metric": metric}
    scoring = {"model": str(tmp_path / "model"), "suites": cofi_suites, "labels": {"method": "base", "seed": None},
               "out": str(tmp_path / "cofi.json")}
    cofi("evaluate", "--prompt", '{"chat_template": true}', "--scorings", json.dumps([scoring]), "--device", "cpu",
         cwd=tmp_path)
    mapping = {"spec": {"echo": ["cofi_echo"]},
               "vers": {"know": ["cofi_pick"], "reason": ["cofi_add"], "instruct": ["cofi_write"]}}
    cofi("lm-eval", "--model", str(tmp_path / "model"), "--tasks", json.dumps(mapping), "--include-path",
         str(tmp_path / "tasks"), "--chat-template", "--labels", '{"method": "base", "seed": null}', "--device", "cpu",
         "--out", str(tmp_path / "harness.json"), cwd=tmp_path, module="cofi.devtools")
    ours, harness = json.loads((tmp_path / "cofi.json").read_text()), json.loads((tmp_path / "harness.json").read_text())
    scores = lambda s: [s["spec"]["echo"], s["know"], s["reason"], s["instruct"]]  # noqa: E731
    assert scores(harness) == pytest.approx(scores(ours))
    assert sum(0 < score < 100 for score in scores(ours)) >= 2, scores(ours)  # a comparison that can fail
    # Every suite as harness tasks of an evaluation job (IFEval's checks included), through the chat template.
    harness_suites_agree(tmp_path, scoring, {"echo": "cofi_echo", "know": "cofi_pick", "reason": "cofi_add",
                                             "instruct": "cofi_write"}, {"chat_template": True}, ours)
    through = everything_through_the_harness(tmp_path, scoring, {"chat_template": True})
    for group in ("spec", "vers"):
        assert through["item_scores"][group] == ours["item_scores"][group]


def test_a_lora_run_scores_with_its_adapter_unmerged_as_its_merged_model_item_by_item(tmp_path, tokenizer, tiny_world):
    """evaluation.lora: adapter: the base model with the run's adapter through peft, unmerged, scores each item as the
    merged weights do, on cofi's own suites and on a harness suite; the base model alone scores otherwise."""
    from cofi.config.runs import Run
    from cofi.methods import METHODS

    base = build_llama(len(tokenizer), TINY_ARCH, seed=0)
    save_model(base, tokenizer, tmp_path / "base")
    run = Run(name="lora", method="lora", params={"rank": 4, "alpha": 8, "dropout": 0.0, "range": None,
                                                  "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]},
              train=TrainSettings(lr=1e-2, steps=60, batch_size=16, log_every=1000))
    records = [r for split in ("rotate_test", "know_test", "reason_test") for r in tiny_world[split]]
    setup = METHODS["lora"].setup(base, run, None)
    train(setup.model, tokenize_dataset(records, Prompter(tokenizer, TEMPLATE), True, 32), run.train, 0, 0,
          tmp_path / "loss.csv", log=lambda _: None)
    (tmp_path / "run").mkdir()
    save_model(setup.finish(setup.model, tmp_path / "run"), tokenizer, tmp_path / "run" / "model")
    suites = {"spec": {}, "vers": {}}
    for group, name, split, kind, metric in (("spec", "rotate", "rotate_test", "generation", "exact_match"),
                                             ("vers", "know", "know_test", "multiple_choice", "accuracy"),
                                             ("vers", "reason", "reason_test", "generation", "exact_match")):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in tiny_world[split]))
        suites[group][name] = {"path": str(path), "type": kind, "metric": metric}
    cofi("lm-eval-task", "--name", "cofi_know", "--data", str(tmp_path / "know.jsonl"), "--type", "multiple_choice",
         "--template", TEMPLATE, "--out-dir", str(tmp_path / "tasks"), cwd=tmp_path, module="cofi.devtools")
    suites["vers"]["instruct"] = {"lm_eval": ["cofi_know"], "include": str(tmp_path / "tasks")}  # through the harness
    labels = {"method": "lora", "seed": 0}
    scorings = [{"model": str(tmp_path / "run" / "model"), "suites": suites, "labels": labels,
                 "out": str(tmp_path / "merged.json")},
                {"model": str(tmp_path / "base"), "adapter": str(tmp_path / "run" / "adapter"), "suites": suites,
                 "labels": labels, "out": str(tmp_path / "adapter.json")},
                {"model": str(tmp_path / "base"), "suites": suites, "labels": labels, "out": str(tmp_path / "base.json")}]
    cofi("evaluate", "--prompt", json.dumps({"template": TEMPLATE}), "--scorings", json.dumps(scorings),
         "--device", "cpu", cwd=tmp_path)
    merged, adapter, untrained = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("merged", "adapter", "base"))
    assert adapter["item_scores"] == merged["item_scores"]
    assert untrained["item_scores"] != merged["item_scores"]  # the adapter is what makes the difference
    assert merged["spec"]["rotate"] > untrained["spec"]["rotate"] or merged["know"] != untrained["know"]
