"""Two processes under torchrun (gloo, CPU) train the same weights as one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cofi.experiment import Run
from cofi.importance import accumulate_importance, prompt_batches, save_importance
from cofi.modeling import save_model
from cofi.settings import TrainSettings

from conftest import TEMPLATE

REPO = Path(__file__).resolve().parent.parent
GROUPS = {"mha": ["q_proj", "k_proj", "v_proj"], "ffn": ["up_proj", "down_proj"]}
TRAIN = {"lr": 0.01, "steps": 4, "batch_size": 8, "grad_accum": 2, "warmup_ratio": 0.25, "log_every": 1}
# Float sums in another order (each process sums its half, then the all-reduce): close, not bit-equal.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}

CASES = {
    "full": ("full", {}),
    "region_softmask": ("cofitune", {"range": [0.0, 0.5], "modules": ["ffn", "mha"], "groups": GROUPS,
                                     "softmask": "grad", "softmask_apply": None}),
    "sam": ("full", {"sam_rho": 0.05}),
}


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory, tokenizer, tiny_world):
    from cofi.modeling import build_llama

    from conftest import TINY_ARCH

    root = tmp_path_factory.mktemp("ddp")
    model = build_llama(len(tokenizer), TINY_ARCH, seed=0)
    save_model(model, tokenizer, root / "base")
    with open(root / "train.jsonl", "w") as handle:
        for record in tiny_world["rotate_train"][:24]:
            handle.write(json.dumps(record) + "\n")
    batches = prompt_batches(tiny_world["rotate_train"], tokenizer, TEMPLATE, 4, 2, 32, seed=0)
    raw = accumulate_importance(model, batches, dropout=0.1, seed=0)
    save_importance(root / "importance.safetensors", raw, model.config, {})
    return root


def finetune(root: Path, name: str, method: str, params: dict, processes: int) -> dict[str, torch.Tensor]:
    out = root / f"{name}-{processes}"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    params = dict(params)
    run = Run(name=name, method=method, train=TrainSettings(**TRAIN), sam_rho=params.pop("sam_rho", None), params=params)
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    command = [*launcher, "-m", "cofi", "finetune", "--model", str(root / "base"), "--run-spec", json.dumps(run.spec()),
               "--train", str(root / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt), "--device", "cpu",
               "--out", str(out / "model"), "--curve", str(out / "loss.csv"),
               "--input", f"importance={root / 'importance.safetensors'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    record = json.loads((out / "model" / "cofi_run.json").read_text())
    assert record["processes"] == processes
    return load_file(out / "model" / "model.safetensors")


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_processes_train_what_one_does(setup_files, case):
    method, params = CASES[case]
    one = finetune(setup_files, case, method, params, processes=1)
    two = finetune(setup_files, case, method, params, processes=2)
    base = load_file(setup_files / "base" / "model.safetensors")
    moved = [name for name in one if not torch.equal(one[name], base[name])]
    assert moved, "training changed nothing: the comparison would be empty"
    for name in one:
        torch.testing.assert_close(two[name], one[name], **TOLERANCE, msg=name)
    if case == "region_softmask":  # frozen weights stay bit-equal to the base, in both
        frozen = [name for name in one if name not in moved]
        assert frozen and all(torch.equal(two[name], base[name]) for name in frozen)
