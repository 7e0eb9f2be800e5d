"""GGUF import: a tiny Llama written as llama.cpp writes it comes back as the same model, through the same
loading path as every checkpoint; other architectures and occupied output directories are refused."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from cofi.models.gguf import GGUFError, architecture_keys, check_gguf, import_gguf
from cofi.models.loading import load_model
from cofi.models.plan import Architecture
from cofi.data.prompts import Prompter

from conftest import REPO
from tiny_gguf import write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


def test_an_imported_gguf_computes_what_the_original_model_computes(tiny_gguf, tmp_path):
    path, original = tiny_gguf
    done = subprocess.run([sys.executable, "-m", "cofi", "import-gguf", "--gguf", str(path), "--out",
                           str(tmp_path / "model")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model" / "model.safetensors").is_file()
    model, tokenizer = load_model(tmp_path / "model")  # the path every job loads a model through
    ids = torch.tensor([tokenizer.encode("the cat sat", add_special_tokens=False)])
    torch.testing.assert_close(model(ids).logits, original(ids).logits, atol=1e-5, rtol=1e-5)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as in the file
    prompter = Prompter(tokenizer, chat=True)
    assert prompter.text({"instruction": "hi", "input": ""}) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert prompter.end_ids == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    # The plan reads the same shape from the header before the import (cluster requests at start-up).
    assert Architecture.from_config(architecture_keys(path)) == Architecture.load(str(tmp_path / "model"))


def test_without_llama_cpps_permutation_the_weights_would_not_match(tmp_path):
    """The check above can fail: a file whose q/k rows were not permuted imports as another model."""
    original = write_tiny_gguf(tmp_path / "plain.gguf", permute=False)
    import_gguf(tmp_path / "plain.gguf", tmp_path / "model", log=lambda _: None)
    model, tokenizer = load_model(tmp_path / "model")
    ids = torch.tensor([tokenizer.encode("the cat sat", add_special_tokens=False)])
    assert not torch.allclose(model(ids).logits, original(ids).logits, atol=1e-4)


def test_other_architectures_unreadable_files_and_occupied_outputs_are_refused(tiny_gguf, tmp_path):
    write_tiny_gguf(tmp_path / "gpt2.gguf", architecture="gpt2")
    with pytest.raises(GGUFError, match=r"model\.gguf .*gpt2\.gguf.*architecture 'gpt2' is not of the Llama family"):
        check_gguf(tmp_path / "gpt2.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(GGUFError, match=r"junk\.gguf.*not a readable GGUF file"):
        check_gguf(tmp_path / "junk.gguf")
    with pytest.raises(GGUFError, match="no such file"):
        check_gguf(tmp_path / "missing.gguf")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(GGUFError, match="exists and is not empty"):
        import_gguf(tiny_gguf[0], tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_a_config_naming_a_gguf_is_checked_at_start_up(tiny_gguf, tmp_path, capsys):
    from cofi.config.checks import ConfigError, checked_experiment

    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    config["model"] = {"gguf": str(tiny_gguf[0])}
    config["runs"] = {"full": {}}
    config["search"] = {"enabled": False}
    config["landscape"] = {"runs": []}
    config["embedded"]["suites"] = "chat"
    config["tasks"] = {"dates": {"type": "generation", "metric": "exact_match"}}
    config["versatility"] = {"know": {"type": "multiple_choice", "metric": "accuracy"},
                             "reason": {"type": "generation", "metric": "number"},
                             "instruct": {"type": "instruction_following", "metric": "ifeval_strict"}}
    config["prompt"] = {"chat_template": True, "max_len": 96}
    experiment = checked_experiment(config)
    assert experiment.n_layers == 2 and experiment.base_model_dir.endswith("base_model")
    capsys.readouterr()
    checked_experiment({**config, "prompt": {"chat_template": False, "max_len": 96}})  # allowed, and said
    assert "has a chat template, and prompt.chat_template is false" in capsys.readouterr().err
    checked_experiment(config)
    assert "has a chat template" not in capsys.readouterr().err
    with pytest.raises(ConfigError, match="model.path and model.gguf: give one"):
        checked_experiment({**config, "model": {"gguf": str(tiny_gguf[0]), "path": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"prompt\.max_len: 8 is too short"):
        checked_experiment({**config, "prompt": {"chat_template": True, "max_len": 8}})
    # a multi-turn conversation as training data: the chat template prompts it, a string template cannot
    talk = [{"role": "user", "content": "Say a"}, {"role": "assistant", "content": "a"}] * 2
    (tmp_path / "talk.jsonl").write_text(json.dumps({"messages": talk}) + "\n")
    dates = {"train": str(tmp_path / "talk.jsonl"), "type": "generation", "metric": "exact_match"}
    checked_experiment({**config, "tasks": {"dates": dates}})
    with pytest.raises(ConfigError, match=r"tasks\.dates\.train: .*talk\.jsonl, record 1: a conversation .* needs "
                                          r"prompt\.chat_template: true"):
        checked_experiment({**config, "tasks": {"dates": dates}, "prompt": {"chat_template": False, "max_len": 96}})
    write_tiny_gguf(tmp_path / "gpt2.gguf", architecture="gpt2")
    with pytest.raises(ConfigError, match="not of the Llama family"):
        checked_experiment({**config, "model": {"gguf": str(tmp_path / "gpt2.gguf")}})
    embedded = {**config, "model": {}, "prompt": {"chat_template": False}}
    with pytest.raises(ConfigError, match="embedded.suites: chat suites are English for a real chat model"):
        checked_experiment(embedded)
