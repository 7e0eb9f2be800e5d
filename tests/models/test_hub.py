"""A model named by its hub id: found in a hub cache the test fills itself, offline; fetched (linked) into the
experiment's folder with its commit by the one job that may go online; a missing snapshot is a start-up error that
says how to fetch it."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from cofi.models.hub import parse_model_id
from cofi.models.loading import build_llama, save_model

from conftest import REPO, TINY_ARCH, copy_workflow, snakemake, snakemake_environment

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_hub_id_is_owner_name_and_a_revision_that_names_no_directory(tmp_path):
    assert parse_model_id("Qwen/Qwen2.5-7B-Instruct") == ("Qwen/Qwen2.5-7B-Instruct", "main")
    assert parse_model_id("Qwen/Qwen2.5-7B-Instruct@v1.0") == ("Qwen/Qwen2.5-7B-Instruct", "v1.0")
    assert parse_model_id(f"org/name@{COMMIT}") == ("org/name", COMMIT)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    os.chdir(tmp_path)
    assert parse_model_id("models/mine") is None  # an existing directory is a local path
    assert parse_model_id("/models/mine") is None and parse_model_id("a/b/c") is None and parse_model_id("x") is None


@pytest.fixture
def hub_home(tmp_path, tokenizer):
    """A Hugging Face home whose hub cache holds org/tiny at main (one commit), as a download leaves it."""
    home = tmp_path / "hf"
    repo = home / "hub" / "models--org--tiny"
    save_model(build_llama(len(tokenizer), TINY_ARCH, seed=0), tokenizer, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return home


def offline(home) -> dict:
    return {**snakemake_environment(), "HF_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def user_config(tmp_path, tiny_world, model: str) -> dict:
    data = {}
    for split in ("rotate_train", "rotate_test", "rotate_val", "know_test", "reason_test", "instruct_test",
                  "know_val", "reason_val", "instruct_val"):
        data[split] = tmp_path / f"{split}.jsonl"
        data[split].write_text("".join(json.dumps(r) + "\n" for r in tiny_world[split]))
    kinds = {"know": "multiple_choice", "reason": "generation", "instruct": "generation"}
    return {"experiment": "hub", "model": {"path": model}, "prompt": {"max_len": 32},
            "tasks": {"law": {"train": str(data["rotate_train"]), "test": str(data["rotate_test"]),
                              "val": str(data["rotate_val"]), "type": "generation"}},
            "versatility": {name: {"test": str(data[f"{name}_test"]), "val": str(data[f"{name}_val"]), "type": kind}
                            for name, kind in kinds.items()},
            "runs": {"full": {}}, "search": {"enabled": False}, "landscape": {"runs": []}}


def cofi(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "cofi", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_cached_hub_id_passes_the_start_up_check_and_a_missing_one_says_how_to_fetch_it(tmp_path, hub_home,
                                                                                         tiny_world):
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(user_config(tmp_path, tiny_world, "org/tiny")))
    done = cofi("check-config", "ok.yaml", env=offline(hub_home), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "absent.yaml").write_text(yaml.safe_dump(user_config(tmp_path, tiny_world, "org/absent@v2")))
    done = cofi("check-config", "absent.yaml", env=offline(hub_home), cwd=tmp_path)
    assert done.returncode != 0
    assert ("config key model.path org/absent@v2: not in the local Hugging Face cache" in done.stderr
            and "python -m cofi fetch-model --repo org/absent --revision v2" in done.stderr), done.stderr


def test_the_fetch_links_the_snapshot_with_its_commit_and_the_workflow_reads_it_from_there(tmp_path, hub_home,
                                                                                           tiny_world):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "hub.yaml").write_text(yaml.safe_dump(user_config(tmp_path, tiny_world, "org/tiny")))
    done = snakemake(workdir, "results/hub/base_model", "--configfile", "hub.yaml", env=offline(hub_home))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = workdir / "results/hub/base_model"
    record = json.loads((folder / "cofi_fetch.json").read_text())
    assert (record["repo"], record["revision"], record["commit"]) == ("org/tiny", "main", COMMIT)
    snapshot = hub_home / "hub/models--org--tiny/snapshots" / COMMIT
    assert (folder / "model.safetensors").stat().st_ino == (snapshot / "model.safetensors").stat().st_ino  # linked
    assert "model.safetensors" in record["files"] and "config.json" in record["files"]
    # Once fetched, the folder is what the start-up check reads, even without the cache; and it is the base model
    # every job loads.
    dry = snakemake(workdir, "--configfile", "hub.yaml", "-n", "-p", env=offline(tmp_path / "empty_home"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "results/hub/base_model" in dry.stdout and "rule fetch_model" not in dry.stdout
    # Another model in the same experiment is refused, not fetched over the first.
    other = user_config(tmp_path, tiny_world, "org/tiny@v9")
    (workdir / "other.yaml").write_text(yaml.safe_dump(other))
    done = snakemake(workdir, "--configfile", "other.yaml", "-n", env=offline(hub_home))
    assert done.returncode != 0 and "holds org/tiny@main (commit 0123456789" in done.stderr + done.stdout
