"""Suites that are lm-evaluation-harness tasks: the config's keys, the start-up checks against the harness's task
index (no data, no model), and each item's result read from the harness's logged samples. The scoring itself is
tested item for item against cofi's own in tests/evaluation/test_lm_eval.py."""

import copy
import json

import pytest

from cofi.config.checks import ConfigError, check_config
from cofi.config.experiment import Experiment
from cofi.evaluation.harness import HarnessError, item_results


def harness_config(config: dict) -> dict:
    """The default with MMLU, GSM8K and IFEval as its three Vers suites (the docs' example), selecting on test."""
    config = copy.deepcopy(config)
    config["versatility"] = {"know": {"lm_eval": ["mmlu"], "num_fewshot": 5},
                             "reason": {"lm_eval": ["gsm8k"], "metric": "exact_match,strict-match"},
                             "instruct": {"lm_eval": ["ifeval"], "metric": "prompt_level_strict_acc"}}
    config["landscape"]["runs"] = []
    config["selection"] = "test"
    return config


def test_harness_suites_are_the_test_split_and_what_selection_reads_without_a_val_file(config):
    experiment = Experiment(check_config(harness_config(config)))
    know = experiment.versatility["know"]
    assert know.spec("test") == {"lm_eval": ["mmlu"], "num_fewshot": 5, "metric": None, "include": None}
    assert know.spec("val") == know.spec("test") and know.selects_on_test() and not know.embedded
    assert experiment.selection_split("bio") == "test"
    assert experiment.evaluation_suites(["bio"], "test")["spec"]["bio"]["path"].endswith("bio_test.jsonl")
    # Under selection: val a suite of harness tasks alone is refused, naming it.
    with pytest.raises(ConfigError, match=r"config keys versatility\.instruct\.val, versatility\.know\.val, "
                                          r"versatility\.reason\.val: no validation file"):
        check_config({**harness_config(config), "selection": "val"})


def test_a_val_file_beside_harness_tasks_is_what_selection_reads(config, tmp_path):
    record = {"instruction": "pick", "input": "x", "choices": ["a", "b"], "answer": 0}
    (tmp_path / "mc_val.jsonl").write_text(json.dumps(record) + "\n")
    edited = harness_config(config)
    edited["versatility"]["know"]["val"] = str(tmp_path / "mc_val.jsonl")
    with pytest.raises(ConfigError, match=r"config key versatility\.know\.type: a val file beside harness tasks must "
                                          r"name its type"):
        check_config(copy.deepcopy(edited))
    edited["versatility"]["know"]["type"] = "multiple_choice"
    know = Experiment(check_config(edited)).versatility["know"]
    assert know.spec("val") == {"path": str(tmp_path / "mc_val.jsonl"), "type": "multiple_choice", "metric": "accuracy"}
    assert know.spec("test")["lm_eval"] == ["mmlu"] and not know.selects_on_test()


@pytest.mark.parametrize("suite, message", [
    ({"lm_eval": ["mmlu_astronmy"]}, r"versatility\.know\.lm_eval: the harness has no task, group or tag "
                                     r"'mmlu_astronmy' \(did you mean mmlu_astronomy"),
    ({"lm_eval": ["gsm8k"], "metric": "acc"}, r"versatility\.know\.metric: harness task 'gsm8k' \(of 'gsm8k'\) has no "
                                              r"metric 'acc' \(it has exact_match\)"),
    ({"lm_eval": ["gsm8k"], "metric": "exact_match,loose"}, r"harness task 'gsm8k' has no filter 'loose' \(it has "
                                                            r"strict-match, flexible-extract\)"),
    ({"lm_eval": ["ifeval"], "metric": "inst_level_strict_acc"}, r"'inst_level_strict_acc' of harness task 'ifeval' "
                                                                 r"is not an item's score"),
    ({"lm_eval": ["mmlu"], "metric": "acc_norm"}, r"harness task 'mmlu_\w+' \(of 'mmlu'\) has no metric 'acc_norm'"),
    ({"lm_eval": ["mmlu"], "test": "x.jsonl"}, r"versatility\.know\.test: the harness tasks in versatility\.know\.lm_eval "
                                               r"are the test split"),
    ({"num_fewshot": 5}, r"versatility\.know\.num_fewshot: only for harness tasks"),
    ({"lm_eval": []}, r"versatility\.know\.lm_eval: \[\] should be non-empty"),
])
def test_bad_harness_suites_name_the_key(config, suite, message):
    edited = harness_config(config)
    edited["versatility"]["know"] = suite
    with pytest.raises(ConfigError, match=message):
        check_config(edited)


def test_a_speciality_task_may_be_harness_tasks_with_its_own_tasks_directory(config, tmp_path):
    from cofi.evaluation.lm_eval import write_local_task

    item = {"instruction": "say", "input": "x", "output": "y"}
    (tmp_path / "law.jsonl").write_text(json.dumps(item) + "\n")
    write_local_task(tmp_path / "tasks", "my_law", tmp_path / "law.jsonl", "generation", "{instruction} {input} =")
    edited = harness_config(config)
    edited["tasks"]["law"] = {"train": str(tmp_path / "law.jsonl"), "lm_eval": ["my_law"]}
    watching = copy.deepcopy(edited)
    watching["tasks"]["law"]["include"] = str(tmp_path / "tasks")
    with pytest.raises(ConfigError, match=r"tasks\.law\.val: kl_every measures the KL on the task's held-out prompts"):
        check_config(watching)  # the default config measures the KL: a harness task then needs a val JSONL
    edited["training"].pop("kl_every")
    with pytest.raises(ConfigError, match=r"tasks\.law\.lm_eval: the harness has no task, group or tag 'my_law'.*"
                                          r"its YAML's directory in tasks\.law\.include"):
        check_config(copy.deepcopy(edited))
    edited["tasks"]["law"]["include"] = str(tmp_path / "tasks")
    experiment = Experiment(check_config(copy.deepcopy(edited)))
    assert experiment.evaluation_suites(["law"], "test")["spec"]["law"]["lm_eval"] == ["my_law"]
    del edited["tasks"]["law"]["train"]
    with pytest.raises(ConfigError, match=r"tasks\.law\.train: harness tasks are what it is scored on, not trained on"):
        check_config(edited)


def sample(doc_id, value, filter_name="none", metric="exact_match", response="r"):
    return {"doc_id": doc_id, "filter": filter_name, "metrics": [metric], metric: value, "filtered_resps": [response]}


def test_each_item_is_read_from_the_logged_samples_in_task_then_document_order():
    samples = {"b_task": [sample(1, 0.0, "strict", response="x"), sample(0, 1.0, "strict"),
                          sample(1, 1.0, "flexible"), sample(0, 1.0, "flexible")],
               "a_task": [sample(0, True, "strict", "prompt_level_strict_acc")]}
    with pytest.raises(HarnessError, match="'a_task' logged no responses under filter 'flexible'"):
        item_results(samples, "exact_match,flexible")
    samples["a_task"] = [sample(1, 0.0, "strict"), sample(0, 1.0, "strict")]
    assert item_results(samples, None) == ([1.0, 0.0, 1.0, 0.0], ["r", "r", "r", "x"])  # each task's first filter
    ifeval = {"ifeval": [sample(0, True, metric="prompt_level_strict_acc"), sample(1, False, metric="prompt_level_strict_acc")]}
    assert item_results(ifeval, "prompt_level_strict_acc") == ([1.0, 0.0], ["r", "r"])
    listed = {"ifeval": [sample(0, [True, False], metric="inst_level_strict_acc")]}
    with pytest.raises(HarnessError, match="metric 'inst_level_strict_acc' of document 0 is list, not one item's score"):
        item_results(listed, "inst_level_strict_acc")
    choices = {"mc": [{"doc_id": 0, "filter": "none", "metrics": ["acc"], "acc": 1.0,
                       "filtered_resps": [(-3.0, False), (-1.0, False), (-2.0, False)]}]}
    assert item_results(choices, "acc") == ([1.0], ["choice 1"])


def test_the_search_sample_is_fixed_by_its_seed_and_pools_a_harness_suites_tasks():
    from cofi.evaluation.subsets import chosen, chosen_documents

    assert chosen(10, 4, 0) == chosen(10, 4, 0) == sorted(chosen(10, 4, 0)) and len(set(chosen(10, 4, 0))) == 4
    assert chosen(10, 4, 0) != chosen(10, 4, 1)
    assert chosen(3, 4, 0) == [0, 1, 2]  # fewer items than the sample: all of them
    picked = chosen_documents({"b": 6, "a": 4}, 5, 0)
    pooled = [("a", d) for d in range(4)] + [("b", d) for d in range(6)]
    assert [(t, d) for t in ("a", "b") for d in picked[t]] == [pooled[i] for i in chosen(10, 5, 0)]


def test_a_search_on_a_sample_reads_score_files_of_its_own(config):
    from cofi.config.candidates import split_of

    edited = copy.deepcopy(config)
    edited["search"] |= {"eval_items": 50, "eval_seed": 2}
    search = Experiment(check_config(edited)).search
    assert (search.name, search.scores_split) == ("tree_items50_seed2", "val_items50_seed2")
    assert split_of(search.scores_split) == ("val", {"items": 50, "seed": 2}) and split_of("val") == ("val", None)
    default = Experiment(check_config(copy.deepcopy(config))).search
    assert (default.name, default.scores_split) == ("tree", "val")


def test_vllm_is_refused_at_start_up_on_a_machine_without_a_gpu(config):
    edited = copy.deepcopy(config)
    edited["evaluation"]["backend"] = "vllm"
    with pytest.raises(ConfigError, match=r"config key evaluation\.backend: vllm serves on GPUs, and this machine has "
                                          r"none .*use backend: hf"):
        check_config(copy.deepcopy(edited))
    edited["compute"]["device"] = "cpu"
    with pytest.raises(ConfigError, match=r"evaluation\.backend: vllm serves on GPUs, and compute\.device is cpu"):
        check_config(copy.deepcopy(edited))
    edited["compute"]["device"] = "auto"
    edited["cluster"]["gpus_per_node"] = 8  # a GPU cluster's jobs: then vllm must be installed where they run
    with pytest.raises(ConfigError, match=r"evaluation\.backend: vllm is not installed"):
        check_config(edited)


def test_a_conversation_suite_longer_than_one_exchange_cannot_go_through_the_harness(config, tmp_path, tokenizer):
    """vLLM scores every suite as a harness task, whose prompt is one user turn: a multi-turn suite is refused at
    start-up (and by the job), a single exchange is the task's user turn."""
    import json

    from cofi.data.prompts import Prompter
    from cofi.config.settings import PromptSettings
    from cofi.evaluation.harness import HarnessError, as_harness_suite

    turns = [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "b a"}]
    talk = tmp_path / "talk.jsonl"
    talk.write_text(json.dumps({"messages": turns}) + "\n" + json.dumps({"messages": turns * 2}) + "\n")
    edited = copy.deepcopy(config)
    edited["evaluation"]["backend"] = "vllm"
    edited["versatility"]["reason"] = {"test": str(talk), "type": "generation"}
    edited["selection"] = "test"
    with pytest.raises(ConfigError, match=r"config key versatility\.reason\.test: .*talk\.jsonl, record 2: a "
                                          r"conversation with a system turn or more than one exchange cannot be a "
                                          r"harness task .*backend: hf"):
        check_config(edited)
    suite = {"path": str(talk), "type": "generation", "metric": "exact_match"}
    with pytest.raises(HarnessError, match="cannot be a harness task"):
        as_harness_suite("reason", suite, Prompter(tokenizer), PromptSettings(), str(tmp_path), None)
    task = as_harness_suite("reason", suite, Prompter(tokenizer), PromptSettings(), str(tmp_path), 1)
    assert task["lm_eval"] == ["cofi_reason"]


def test_vllm_arguments_spread_the_model_over_the_jobs_gpus_as_its_heads_allow(tmp_path):
    from cofi.evaluation.harness import tensor_parallel_size, vllm_model_args

    assert [tensor_parallel_size(g, 32) for g in (0, 1, 2, 3, 4, 8)] == [1, 1, 2, 2, 4, 8]
    assert tensor_parallel_size(8, 28) == 7 and tensor_parallel_size(8, 40, 8) == 8
    assert tensor_parallel_size(8, 28, 4) == 4  # Qwen2.5-7B: 28 query heads, 4 key/value heads
    assert tensor_parallel_size(8, 64, 8) == 8 and tensor_parallel_size(16, 64, 8) == 16  # kv heads over 2 GPUs each
    args = vllm_model_args("/m/qwen", 8, (28, 4), "float32", "bf16", 64, chat=True, trust_remote_code=False)
    assert args == {"pretrained": "/m/qwen", "tensor_parallel_size": 4, "dtype": "bfloat16", "batch_size": 64,
                    "add_bos_token": False, "trust_remote_code": False, "seed": 0}
    assert vllm_model_args("/m", 1, (4, None), "float32", "fp32", 8, chat=False)["dtype"] == "float32"
    assert vllm_model_args("/m", 1, (4, None), "float32", "fp32", 8, chat=False)["add_bos_token"] is True
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 32, "lora_alpha": 64}))
    with_adapter = vllm_model_args("/m", 1, (4, None), "float32", "fp32", 8, chat=False, adapter=str(tmp_path))
    assert with_adapter["lora_local_path"] == str(tmp_path) and with_adapter["max_lora_rank"] == 32


def test_an_evaluation_job_with_the_vllm_backend_says_it_needs_a_gpu(tmp_path):
    from cofi.jobs.evaluate import EvaluateJob
    from cofi.jobs.interface import job_from

    job = job_from(EvaluateJob, {"scorings": [], "prompt": {}, "backend": "vllm", "device": "cpu"}, "test")
    with pytest.raises(HarnessError, match="evaluation.backend vllm: this job sees no CUDA GPU"):
        job.execute()
