import copy
import json
import re
import subprocess
import sys

import pytest
import yaml

from cofi.config.checks import ConfigError, check_config, load_config
from cofi.config.experiment import Experiment
from cofi.config.schema import load_schema

from conftest import REPO



def test_default_config_is_valid_and_complete(config):
    check_config(copy.deepcopy(config))
    # Every top-level section of the schema is spelled out in config.yaml, so users see all knobs there.
    assert set(load_schema()["properties"]) == set(config)
    assert set(load_schema()["properties"]["search"]["properties"]) == set(config["search"])


def test_minimal_config_gets_the_defaults():
    config = check_config({"experiment": "x", "tasks": {"bio": {"type": "generation", "metric": "rouge_l"}}})
    assert config["runs"] == {"full": {}}
    assert config["training"] == {"lr": 0.0003, "steps": 200, "batch_size": 32, "grad_accum": 1,
                                  "warmup_ratio": 0.05, "weight_decay": 0.0, "max_grad_norm": 1.0, "log_every": 25,
                                  "kl_every": 0, "kl_items": 32, "max_kl": None}
    assert config["importance"]["source"] == "speciality" and config["importance"]["dropout"] == 0.003
    know = Experiment(config).versatility["know"]  # the embedded data's type, and that type's first metric
    assert (know.type, know.metric) == ("multiple_choice", "accuracy")
    assert config["model"] == {"path": None, "gguf": None, "trust_remote_code": False, "dtype": "float32"}
    assert config["compute"] == {"device": "auto", "precision": "fp32", "gradient_checkpointing": False, "tensorboard": False,
                                 "sharding": "auto", "accumulate_unsharded": False, "checkpoint_every": 0}


@pytest.mark.parametrize(
    "compute, message",
    [
        ({"device": "tpu"}, r"config key compute\.device: 'tpu' does not match"),
        ({"precision": "fp8"}, r"config key compute\.precision: 'fp8' is not one of"),
        ({"checkpoint_every": -1}, r"config key compute\.checkpoint_every: -1 is less than the minimum of 0"),
    ],
)
def test_bad_compute_settings_name_the_key(compute, message):
    with pytest.raises(ConfigError, match=message):
        check_config({"experiment": "x", "tasks": {"bio": {}}, "compute": compute})


def test_fp16_is_refused_for_runs_with_sam():
    config = {"experiment": "x", "tasks": {"bio": {}}, "compute": {"precision": "fp16"},
              "runs": {"full": {}, "full_sam": {"method": "full", "sam": {"rho": 0.05}}}}
    with pytest.raises(ConfigError, match=r"compute\.precision \(run full_sam\): fp16 cannot train with SAM"):
        check_config(config)
    config["compute"]["precision"] = "bf16"
    check_config(config)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


GOOD_RECORD = {"instruction": "a", "input": "b", "output": "c"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c, d: c["runs"]["full"].update(lr="fast"), r"config key runs\.full\.lr: 'fast' is not of type 'number'"),
        (lambda c, d: c["runs"]["full"].update(steps=0), r"config key runs\.full\.steps: 0 is less than the minimum of 1"),
        (lambda c, d: c["evaluation"].update(batch_size=-3), r"config key evaluation\.batch_size: -3 is less than"),
        (lambda c, d: c.update(seeds=[]), r"config key seeds: \[\] should be non-empty"),
        (lambda c, d: c.update(modle={}), r"config key \(top level\): Additional properties are not allowed \('modle'"),
        (lambda c, d: c["model"].update(dtype="float8"), r"config key model\.dtype: 'float8' is not one of"),
        (lambda c, d: c["tasks"]["bio"].update(type="essay"), r"config key tasks\.bio\.type: unknown task type 'essay'"),
        (lambda c, d: c["tasks"]["bio"].update(metric="bleu"), r"config key tasks\.bio\.metric: unknown metric 'bleu'"),
        (lambda c, d: c["versatility"]["know"].update(metric="exact_match"), r"versatility\.know\.metric: unknown metric"),
        (lambda c, d: c["runs"].update(magic={}), r"config key runs\.magic: unknown method"),
        (lambda c, d: c["tasks"].update(law={}), r"config key tasks\.law\.train: null means the embedded data"),
        (lambda c, d: c["tasks"].update(law={"train": str(d / "no.jsonl"), "test": str(d / "no.jsonl"), "type": "generation"}), r"no\.jsonl: data file does not exist"),
        (lambda c, d: c["tasks"].update(law={"train": write_jsonl(d / "t.jsonl", [GOOD_RECORD, {"input": "x"}]), "test": write_jsonl(d / "u.jsonl", [GOOD_RECORD]), "type": "generation"}),
         r"t\.jsonl:2: missing field 'instruction'"),
        (lambda c, d: c["versatility"]["know"].update(test=write_jsonl(d / "mc.jsonl", [GOOD_RECORD])), r"mc\.jsonl:1: multiple-choice item needs 'choices'"),
        (lambda c, d: c["prompt"].update(template="{instruction} {question}"), r"config key prompt\.template: must be a format string"),
        (lambda c, d: c["embedded"]["world"].update(min_list_len=5, max_list_len=4), r"embedded\.world\.min_list_len"),
        (lambda c, d: c["embedded"]["base"].update(heads=3), r"embedded\.base\.heads: must divide"),
        (lambda c, d: c["model"].update(path=str(d / "missing")), r"model\.path '.*missing': no such directory"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0.5, 1.5], "modules": ["ffn"]}), r"runs\.reg: layer range \(1/2, 3/2\] must satisfy 0 <= a < b <= 1"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0.5, 0.25], "modules": ["ffn"]}), r"runs\.reg: layer range .* must satisfy"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0.3, 0.35], "modules": ["ffn"]}), r"runs\.reg: region r30-35_ffn: the range .* selects no layer of a 8-layer model"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0, 0.5], "modules": []}), r"runs\.reg: a region needs at least one module group"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0, 0.5], "modules": ["moe"]}), r"runs\.reg: region r0-50_moe: unknown module group\(s\) \['moe'\]"),
        (lambda c, d: c["runs"].update(reg={"method": "region", "range": [0, 0.5]}), r"runs\.reg: method 'region' needs 'modules'"),
        (lambda c, d: c["runs"]["full"].update(range=[0, 0.5]), r"runs\.full\.range: method 'full' does not take it \(only cofitune, lora, region\)"),
        (lambda c, d: c["runs"]["full"].update(softmask="grad"), r"runs\.full\.softmask: method 'full' does not take it \(only cofitune, vsoftmask\)"),
        (lambda c, d: c["runs"]["cofitune_grad"].update(softmask="hard"), r"runs\.cofitune_grad\.softmask: 'hard' is not one of"),
        (lambda c, d: c["runs"]["cofitune_grad"].update(softmask_apply="update"), r"runs\.cofitune_grad\.softmask_apply: mode 'grad' always scales the grad"),
        (lambda c, d: c["search"].update(enabled=False), r"runs\.cofitune_grad: method 'cofitune' trains the coarse search's pick; set search\.enabled: true"),
        (lambda c, d: c["search"].update(reference="cofitune_grad"), r"search\.reference: 'cofitune_grad' trains the search's own pick"),
        (lambda c, d: c["training"].update(lr=0), r"config key training\.lr: 0 is less than or equal to the minimum of 0"),
        (lambda c, d: c["importance"].update(dropout=0), r"config key importance\.dropout: 0 is less than or equal to the minimum of 0"),
        (lambda c, d: c["importance"].update(source="web"), r"config key importance\.source: 'web' is not one of"),
        (lambda c, d: c["importance"].update(source="versatility", versatility_data=str(d / "none.jsonl")), r"importance\.versatility_data: .*none\.jsonl: data file does not exist"),
        (lambda c, d: c["module_groups"].update(ffn=[]), r"module_groups: module group 'ffn' is empty"),
        (lambda c, d: c["module_groups"].update(ffn=["up_prj"]), r"module_groups\.ffn: the model's decoder layers have no \['up_prj'\]"),
        (lambda c, d: c["search"].update(schedule=["halves", "thirds"]), r"search\.schedule\[1\]: unknown step 'thirds'"),
        (lambda c, d: c["search"].update(root_modules=["mha", "moe"]), r"search\.root_modules: unknown module group"),
        (lambda c, d: c["search"].update(reference="fulll"), r"search\.reference: 'fulll' is not a configured run"),
        (lambda c, d: c["landscape"].update(runs=["base", "ful"]), r"landscape\.runs\[1\]: 'ful' is not base or a configured run"),
        (lambda c, d: c["landscape"].update(points_2d=10), r"landscape\.points_2d: 10 is even"),
        (lambda c, d: c["landscape"].update(radius=0.6), r"landscape\.radius: 0\.6 exceeds landscape\.span 0\.5"),
        (lambda c, d: c["tables"].update(reference="sft"), r"tables\.reference: 'sft' is not a configured run \(a sweep: name one of its runs, e\.g\. sft_lr0\.0001, or sft_tuned\)"),
        (lambda c, d: c["runs"].pop("wiseft") and c["runs"]["full"].update(lr=[0.1, 0.2]), r"search\.reference: 'full' is a sweep"),
        (lambda c, d: c["runs"]["full"].update(lr=[0.1, -0.2]), r"runs\.full\.lr\.1: -0\.2 is less than or equal to the minimum of 0"),
        (lambda c, d: c["search"].update(min_layers=5), r"search\.min_layers: no first-depth candidate keeps 5 layers of 8"),
        (lambda c, d: c["search"].update(criterion="loss"), r"search\.criterion: 'loss' is not one of"),
        (lambda c, d: c["search"].update(mode="snr", lr=[0.001, 0.003]), r"search\.lr: \[0\.001, 0\.003\] under search\.mode snr, which trains no candidate"),
        (lambda c, d: c["search"].update(mode="snr", eval_items=50), r"search\.eval_items: set under search\.mode snr"),
        (lambda c, d: c["realign"].update(runs=["full", "fulll"]), r"realign\.runs\[1\]: 'fulll' is not a configured run$"),
        (lambda c, d: c["realign"].update(runs=["base"]), r"realign\.runs\[0\]: 'base' is not a configured run \(the base model is always probed"),
        (lambda c, d: c["realign"].update(runs=["full", "full"]), r"realign\.runs\[1\]: 'full' is listed twice"),
        (lambda c, d: (d / "empty").mkdir() or c["model"].update(path=str(d / "empty")), r"model\.path '.*empty': no config\.json"),
        (lambda c, d: c["claims"].update(cofitune="no_such_run"), r"config key claims\.cofitune: 'no_such_run' is not a row of the tables \(rows: base, full, "),
        (lambda c, d: c["claims"].update(full_tuned="full_tuned"), r"claims\.full_tuned: 'full_tuned' is not a row"),
        (lambda c, d: c["claims"].update(old_data=["replay", "replya"]), r"claims\.old_data\[1\]: 'replya' is not a row"),
        (lambda c, d: c["claims"].update(sharpness="rise_1d"), r"claims\.sharpness: 'rise_1d' is not a column of sharpness\.csv \(expected one of spec_rise_1d, "),
    ],
)
def test_bad_config_names_the_key(config, tmp_path, edit, message):
    edit(config, tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_a_suite_with_data_of_its_own_must_name_its_type(config, tmp_path):
    """Without a type, a multiple-choice file would have been scored as generation, without a word."""
    mc = {"instruction": "pick", "input": "x", "choices": ["a", "b"], "answer": 0}
    config["versatility"]["know"] = {"test": write_jsonl(tmp_path / "mc.jsonl", [mc])}
    with pytest.raises(ConfigError, match=r"config key versatility\.know\.type: a suite with data of its own must "
                                          r"name its type \(one of generation, multiple_choice, instruction_following\)"):
        check_config(config)
    config["versatility"]["know"]["type"] = "multiple_choice"
    config["versatility"]["know"]["val"] = write_jsonl(tmp_path / "mc_val.jsonl", [mc])
    assert Experiment(check_config(config)).versatility["know"].metric == "accuracy"  # the type's first metric


def test_selection_is_on_validation_unless_the_config_chooses_test(config, tmp_path):
    """A suite without a validation file would make the search and the tuned rows choose on the test split: refused,
    naming the keys, until the config says selection: test; then the rows that choice touches are known."""
    record = {"instruction": "say", "input": "x", "output": "y"}
    config["tasks"]["law"] = {"train": write_jsonl(tmp_path / "law_train.jsonl", [record]),
                              "test": write_jsonl(tmp_path / "law_test.jsonl", [record]), "type": "generation"}
    config["versatility"]["instruct"] = {"test": write_jsonl(tmp_path / "if.jsonl", [record]), "type": "generation"}
    with pytest.raises(ConfigError, match=r"config keys tasks\.law\.val, versatility\.instruct\.val: no validation "
                                          r"file, so the search and the tuned rows would choose on the test split"):
        check_config(copy.deepcopy(config))
    experiment = Experiment(check_config({**copy.deepcopy(config), "selection": "test"}))
    assert experiment.selection_split("law") == experiment.selection_split("bio") == "test"  # instruct: every task
    touched = experiment.selected_on_test()["law"]
    assert {"sft_tuned", "wiseft_tuned", "cofitune_coarse", "cofitune_grad"} <= set(touched) and "full" not in touched
    config["versatility"]["instruct"]["val"] = write_jsonl(tmp_path / "if_val.jsonl", [record])
    config["tasks"]["law"]["val"] = write_jsonl(tmp_path / "law_val.jsonl", [record])
    experiment = Experiment(check_config(config))
    assert experiment.selection_split("law") == "val" and experiment.selected_on_test() == {}


def test_embedded_suites_take_the_embedded_types_and_their_first_metrics(config):
    for section in ("tasks", "versatility"):
        for entry in config[section].values():
            entry.pop("type"), entry.pop("metric")
    experiment = Experiment(check_config(config))
    assert {n: (s.type, s.metric) for n, s in experiment.versatility.items()} == {
        "know": ("multiple_choice", "accuracy"), "reason": ("generation", "exact_match"),
        "instruct": ("generation", "exact_match")}
    assert experiment.tasks["bio"].type == "generation"


def test_the_schema_names_every_task_type_and_metric():
    """The descriptions of a suite's type and metric (and so the configuration reference) list exactly the task
    types and metrics cofi.evaluation.tasks has."""
    from cofi.config.schema import load_schema
    from cofi.evaluation.tasks import TASK_TYPES

    schema = load_schema()
    suites = [schema["definitions"]["suite"]["properties"], schema["properties"]["tasks"]["additionalProperties"]["properties"]]
    for properties in suites:
        words = lambda key: set(re.findall(r"[a-z_]+", properties[key]["description"]))  # noqa: E731
        assert set(TASK_TYPES) <= words("type"), properties["type"]["description"]
        assert {m for kind in TASK_TYPES.values() for m in kind.metrics} <= words("metric")
        assert set(TASK_TYPES) <= words("metric")  # each metric list says whose it is


def test_claims_rows_left_at_their_defaults_may_be_absent_and_null_leaves_a_claim_untested(config):
    """A config that sets no claims key and lacks the default rows (full_sam, full_2x, ...) starts: those claims are
    not tested. A key set to null is accepted; rows that exist (a run, a sweep's tuned row, the coarse pick, a
    sweep as old data) are accepted."""
    del config["claims"]
    config["runs"] = {"full": {}, "cofitune": {"softmask": "grad"}}
    config["landscape"]["runs"] = ["base", "full"]
    check_config(config)
    config["claims"] = {"cofitune": "cofitune_coarse", "sam": None, "equal_compute": None, "full_tuned": None}
    check_config(config)


def test_claims_rows_may_name_tuned_rows_and_sweeps(config):
    config["claims"].update(cofitune="cofitune_grad", full_tuned="sft_tuned", old_data=["replay", "wiseft"],
                            own_rows=["wiseft_tuned"])
    check_config(config)


def test_model_that_is_not_a_causal_lm(config, tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    config["model"]["path"] = str(tmp_path)
    with pytest.raises(ConfigError, match=r"model_type 'vit' is not a causal language model"):
        check_config(config)


def test_check_config_command_exits_nonzero_with_the_message(config, tmp_path):
    config["training"]["lr"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "cofi", "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "config key training.lr: -1 is less than or equal to the minimum of 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreadable_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("experiment: [unclosed")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_config(tmp_path / "c.yaml")


BASELINES = {
    "full": {}, "full_sam": {"method": "full", "sam": {"rho": 0.05}}, "full_2x": {"method": "full", "equal_compute": True},
    "lora": {}, "lora_q2": {"method": "lora", "range": [0.25, 0.5]}, "l1": {}, "l2": {}, "replay": {"fraction": 0.1},
    "wiseft": {"alpha": [0.25, 0.5]},
}


@pytest.mark.parametrize(
    "run, edit, message",
    [
        ("full_sam", {"sam": {"rho": 0}}, None),  # no SAM: plain AdamW
        ("full_sam", {"sam": {"rho": -1}}, r"config key runs\.full_sam\.sam\.rho: -1 is less than the minimum of 0"),
        ("full_sam", {"sam": {"rho": [0.05, -0.1]}}, r"config key runs\.full_sam\.sam\.rho\.1: -0\.1 is less than the minimum of 0"),
        ("full_sam", {"sam": {"rho": [0, 0.05]}}, None),  # SAM off or on, a tuned row
        ("full_sam", {"sam": {"rho": [0.05, 0.2]}}, None),
        ("full_sam", {"sam": {"radius": 1}}, r"config key runs\.full_sam\.sam: Additional properties are not allowed \('radius'"),
        ("wiseft", {"alpha": [0.5, 1.5]}, r"config key runs\.wiseft\.alpha: 1\.5 is greater than the maximum of 1"),
        ("wiseft", {"alpha": -0.1}, r"config key runs\.wiseft\.alpha: -0\.1 is less than the minimum of 0"),
        ("wiseft", {"alpha": []}, r"config key runs\.wiseft\.alpha: an empty list"),
        ("wiseft", {"source": "fulll"}, r"config key runs\.wiseft\.source: 'fulll' is not a configured run"),
        ("wiseft", {"source": "wiseft_alpha0.25"}, r"config key runs\.wiseft\.source: 'wiseft_alpha0.25' does not train"),
        ("wiseft", {"sam": {"rho": 0.1}}, r"config key runs\.wiseft\.sam: method 'wiseft' does not train"),
        ("wiseft", {"lr": 0.1}, r"config key runs\.wiseft\.lr: method 'wiseft' does not train"),
        ("replay", {"fraction": 1.0}, r"config key runs\.replay\.fraction: 1\.0 is greater than or equal to the maximum of 1"),
        ("replay", {"fraction": -0.2}, r"config key runs\.replay\.fraction: -0\.2 is less than the minimum of 0"),
        ("replay", {"fraction": 0.01}, r"config key runs\.replay\.fraction: 0\.01 of batch_size 32 gives 0 replay examples"),
        ("replay", {"data": "/nowhere/v.jsonl"}, r"config key runs\.replay\.data: /nowhere/v\.jsonl: data file does not exist"),
        ("lora", {"rank": 0}, r"config key runs\.lora\.rank: 0 is less than the minimum of 1"),
        ("lora", {"dropout": 1}, r"config key runs\.lora\.dropout: 1 is greater than or equal to the maximum of 1"),
        ("lora_q2", {"range": [0.3, 0.35]}, r"config key runs\.lora_q2\.range: \(0\.3, 0\.35\] selects no layer of a 8-layer model"),
        ("lora_q2", {"range": [0.5, 0.25]}, r"config key runs\.lora_q2\.range: layer range .* must satisfy 0 <= a < b <= 1"),
        ("lora", {"target_modules": ["q_proj", "qkv"]}, r"config key runs\.lora\.target_modules: the model's decoder layers have no \['qkv'\]"),
        ("l2", {"lambda": -1}, r"config key runs\.l2\.lambda: -1 is less than the minimum of 0"),
        ("full_2x", {"sam": {"rho": 0.1}}, r"config key runs\.full_2x\.equal_compute: doubles a plain optimizer's steps"),
        ("full", {"alpha": 0.5}, r"config key runs\.full\.alpha: method 'full' does not take it \(only lora, wiseft\)"),
        ("wiseft", {"alpha": [0, 1]}, None),  # fine alone; with a run of a variant's name, not:
        ("wiseft_alpha1", {"method": "full", "alpha_list": True}, r"runs\.wiseft_alpha1: the name is also a variant of run 'wiseft'"),
    ],
)
def test_bad_baseline_settings_name_the_key(config, run, edit, message):
    config["runs"] = copy.deepcopy(BASELINES)
    config["landscape"]["runs"] = ["base", "full"]
    if edit.pop("alpha_list", False):
        config["runs"]["wiseft"]["alpha"] = [0, 1]
    config["runs"].setdefault(run, {}).update(edit)
    if message is None:
        check_config(config)
        return
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_replay_data_must_be_given_for_a_users_model(config, tmp_path):
    from cofi.models.loading import build_llama, build_word_tokenizer, save_model

    save_model(build_llama(8, {"layers": 2, "hidden": 16, "intermediate": 32, "heads": 2, "max_len": 16}, 0),
               build_word_tokenizer(["a", "b"]), tmp_path)
    config["model"]["path"] = str(tmp_path)
    config["search"]["enabled"] = False
    config["runs"] = {"full": {}, "replay": {}}
    config["landscape"]["runs"] = []
    with pytest.raises(ConfigError, match=r"config key runs\.replay\.data: null takes the world suites. versatility mixture"):
        check_config(config)


def test_a_tuned_row_can_be_the_table_reference(config):
    config["tables"]["reference"] = "sft_tuned"
    check_config(config)


def test_baselines_config_is_valid(config):
    config["runs"] = copy.deepcopy(BASELINES) | {"cofitune_grad": {"method": "cofitune"}}
    config["landscape"]["runs"] = ["base", "full_sam", "wiseft_alpha0.5"]
    check_config(config)


def test_embedded_projection_names_are_those_of_the_built_model():
    import torch

    from cofi.models.layers import PROJECTIONS
    from cofi.models.loading import build_llama

    model = build_llama(16, {"layers": 2, "hidden": 16, "intermediate": 32, "heads": 2, "max_len": 8}, 0)
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n}
    assert names == set(PROJECTIONS)


def test_a_users_model_is_read_on_the_meta_device(tmp_path):
    from transformers import Qwen2Config

    from cofi.models.loading import decoder_projections

    Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                vocab_size=32).save_pretrained(tmp_path)
    names = decoder_projections(tmp_path)
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    from cofi.config.schema import validate_schema

    config = load_config(path)
    if (config.get("model") or {}).get("path"):  # a template for the user's model and data: no files here
        validate_schema(config)
        assert config["compute"]["precision"] in ("bf16", "fp16")
    else:
        check_config(config)


def test_the_loadable_dtypes_are_the_settings_ones():
    import typing

    from cofi.models.loading import DTYPES
    from cofi.config.settings import ModelSettings

    assert set(DTYPES) == set(typing.get_args(typing.get_type_hints(ModelSettings)["dtype"]))


def test_settings_at_their_defaults_stay_off_the_command_lines():
    """A new compute or prompt setting left at its default must not rerun finished jobs (Snakemake reruns a job
    whose params change), so the rules pass only the keys that differ from their defaults."""
    from cofi.config.settings import ComputeSettings, PromptSettings, non_default

    assert non_default(ComputeSettings()) == {} and non_default(PromptSettings()) == {}
    assert non_default(ComputeSettings(tensorboard=True, precision="bf16")) == {"precision": "bf16", "tensorboard": True}
    assert non_default(PromptSettings(chat_template=True, max_len=96)) == {"chat_template": True, "max_len": 96}


def test_a_system_turn_needs_the_chat_template(config):
    config["prompt"]["system"] = "Be brief."
    with pytest.raises(ConfigError, match=r"config key prompt\.system: a system turn needs prompt\.chat_template: true"):
        check_config(config)


def test_a_suites_answer_length_reaches_its_evaluation_spec_where_it_is_set(config, tmp_path):
    """Left out, the spec is as before (no job's params change); set, every split's spec carries it; a multiple-choice
    suite or harness tasks refuse it."""
    plain = Experiment(check_config(copy.deepcopy(config)))
    edited = copy.deepcopy(config)
    edited["tasks"]["bio"]["max_new_tokens"] = 300
    experiment = Experiment(check_config(edited))
    assert experiment.tasks["bio"].spec("test")["max_new_tokens"] == 300
    assert experiment.tasks["bio"].spec("val")["max_new_tokens"] == 300
    assert "max_new_tokens" not in plain.tasks["bio"].spec("test")
    refused = copy.deepcopy(config)
    refused["versatility"]["know"]["max_new_tokens"] = 5
    with pytest.raises(ConfigError, match=r"config key versatility\.know\.max_new_tokens: a multiple_choice suite "
                                          "generates nothing"):
        check_config(refused)
    harness = copy.deepcopy(config)
    harness["versatility"]["reason"] = {"lm_eval": ["gsm8k"], "max_new_tokens": 5}
    with pytest.raises(ConfigError, match=r"config key versatility\.reason\.max_new_tokens: harness tasks keep their "
                                          "own answer lengths"):
        check_config(harness)


def test_forgetting_keys_are_run_keys_left_out_of_a_spec_that_does_not_set_them(config):
    """kl_every and max_kl are training keys a run may set (max_kl sweeps); a run that sets neither keeps the spec
    it had before they existed, so its outputs are not rerun; a budget without measurements is refused."""
    unwatched = copy.deepcopy(config)
    unwatched["training"].pop("kl_every")  # the default config watches: kl_every 10
    plain = Experiment(check_config(unwatched))
    assert not {"kl_every", "kl_items", "max_kl"} & set(plain.runs["full"].spec()["train"])
    assert Experiment(check_config(copy.deepcopy(config))).runs["full"].spec()["train"]["kl_every"] == 10
    assert plain.forgetting_samples("full", "bio") is None
    edited = copy.deepcopy(config)
    edited["runs"]["budget"] = {"method": "full", "kl_every": 10, "max_kl": [1.0, 2.0]}
    experiment = Experiment(check_config(edited))
    assert [(n, r.train.max_kl) for n, r in experiment.runs.items() if n.startswith("budget")] == [
        ("budget_max_kl1", 1.0), ("budget_max_kl2", 2.0)]
    assert experiment.runs["budget_max_kl1"].spec()["train"]["kl_every"] == 10
    samples = experiment.forgetting_samples("budget_max_kl1", "bio")
    assert samples["task"]["path"].endswith("bio_val.jsonl") and set(samples["vers"]) == {"know", "reason", "instruct"}
    refused = copy.deepcopy(unwatched)
    refused["training"]["max_kl"] = 1.0
    with pytest.raises(ConfigError, match=r"max_kl \(or training\.max_kl\): a KL budget needs the KL measured"):
        check_config(refused)
