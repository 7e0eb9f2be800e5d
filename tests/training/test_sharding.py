"""Sharded training (FSDP2, gloo, CPU): 2 and 3 processes train the weights one process trains.

A tiny Llama in float64 whose widths do not divide by 3 (so the last shards are shorter), several
steps with gradient accumulation: Full SFT, a region, both soft masks, SAM, L2 and LoRA. The losses are divided by the
global token count and FSDP2 is set to sum, so the sharded weights equal one process's up to the
order of float sums; an average instead of a sum (FSDP2's default) shows up here through Adam's ε,
the clipping and the penalty, which do not scale with the gradient.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cofi.data.prompts import Prompter
from cofi.config.runs import Run
from cofi.methods.cofitune.importance import accumulate_importance, prompt_batches, save_importance
from cofi.models.loading import build_llama, save_model
from cofi.config.settings import TrainSettings

from conftest import REPO, TEMPLATE

# 20 wide, FFN 37, 5 heads: rows of every projection split unevenly over 3 shards (7/7/6, 13/13/11).
ARCH = {"layers": 2, "hidden": 20, "intermediate": 37, "heads": 5, "max_len": 32}
GROUPS = {"mha": ["q_proj", "k_proj", "v_proj"], "ffn": ["up_proj", "down_proj"]}
TRAIN = {"lr": 0.01, "steps": 4, "batch_size": 6, "grad_accum": 2, "warmup_ratio": 0.25, "log_every": 1,
         "max_grad_norm": 1.0}
SOFT = {"range": ["0", "1"], "modules": ["ffn", "mha"], "groups": GROUPS, "softmask_apply": None}
CASES = {
    "full": ("full", {}),
    "region": ("region", {"range": ["1/2", "1"], "modules": ["ffn"], "groups": GROUPS}),
    "grad_mask": ("cofitune", {**SOFT, "softmask": "grad"}),
    "update_mask": ("cofitune", {**SOFT, "softmask": "update"}),
    "sam": ("full", {"sam_rho": 0.05}),
    "l2": ("l2", {"lambda": 1.0}),
    "lora": ("lora", {"rank": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"],
                      "range": None}),
}
# Float64 throughout: what is left is the order of float sums.
TOLERANCE = {"atol": 1e-10, "rtol": 1e-8}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenizer, tiny_world):
    root = tmp_path_factory.mktemp("sharding")
    model = build_llama(len(tokenizer), ARCH, seed=0).double()
    save_model(model, tokenizer, root / "base")
    for name, records in (("train", tiny_world["rotate_train"][:30]), ("val", tiny_world["rotate_val"]),
                          ("reason", tiny_world["reason_val"])):
        with open(root / f"{name}.jsonl", "w") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    batches = prompt_batches(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), 4, 2, 32, seed=0)
    raw = accumulate_importance(model.float(), batches, dropout=0.1, seed=0)
    save_importance(root / "importance.safetensors", raw, model.config, {})
    return root


def finetune(root: Path, name: str, method: str, params: dict, processes: int, compute=None,
             forgetting: dict | None = None) -> dict[str, torch.Tensor]:
    out = root / f"{name}-{processes}"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    params = dict(params)
    train = TrainSettings(**TRAIN, kl_every=2 if forgetting else 0)
    run = Run(name=name, method=method, train=train, sam_rho=params.pop("sam_rho", None), params=params)
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    command = [*launcher, "-m", "cofi", "finetune", "--model", str(root / "base"), "--run-spec", json.dumps(run.spec()),
               "--train", str(root / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt),
               "--compute", json.dumps({"device": "cpu", **(compute or {})}), "--dtype", "float64",
               "--out", str(out / "model"), "--curve", str(out / "loss.csv"),
               "--inputs", json.dumps({"importance": str(root / "importance.safetensors")})] + (
        ["--forgetting", json.dumps(forgetting)] if forgetting else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    record = json.loads((out / "model" / "cofi_run.json").read_text())
    assert record["processes"] == processes and record["sharded"] == (processes > 1)
    assert record.get("mesh") == ({"shard": processes} if processes > 1 else None)
    return load_file(out / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def single(files):
    """Each case trained by one process, once for both comparisons."""
    return {case: finetune(files, case, *CASES[case], processes=1) for case in CASES}


# Three processes (uneven shards) for every case; two for three of them.
# Every case once: three processes (uneven shards) for most, two for the rest; Full SFT both ways.
RUNS = [(case, 3) for case in ("full", "update_mask", "sam", "lora")] + \
    [(case, 2) for case in ("full", "region", "grad_mask", "l2")]


@pytest.mark.parametrize("case, processes", RUNS, ids=[f"{c}-{p}" for c, p in RUNS])
def test_sharded_training_gives_one_process_weights(files, single, case, processes):
    one, many = single[case], finetune(files, case, *CASES[case], processes=processes)
    base = load_file(files / "base" / "model.safetensors")
    assert one.keys() == many.keys() == base.keys()
    moved = [name for name in one if not torch.equal(one[name], base[name])]
    assert moved, "training changed nothing: the comparison would be empty"
    for name in one:
        assert many[name].dtype == torch.float64
        torch.testing.assert_close(many[name], one[name], **TOLERANCE, msg=name)
    if case in ("region", "grad_mask", "update_mask"):  # frozen weights stay bit-equal to the base, in both
        frozen = [name for name in one if name not in moved]
        assert frozen and all(torch.equal(many[name], base[name]) for name in frozen)


def test_sharded_training_measures_the_forgetting_one_process_measures_and_trains_the_same(files, single):
    """training.kl_every under FSDP2 (two processes, no second model): the KL and versatility cross-entropy curves of
    one process, and the weights of a run that does not measure."""
    import pandas as pd

    samples = {"task": {"path": str(files / "val.jsonl"), "type": "generation"},
               "vers": {"reason": {"path": str(files / "reason.jsonl"), "type": "generation"}}}
    one = finetune(files, "watched", "full", {}, processes=1, forgetting=samples)
    many = finetune(files, "watched", "full", {}, processes=2, forgetting=samples)
    for name in one:
        torch.testing.assert_close(one[name], single["full"][name], **TOLERANCE, msg=name)  # measuring changes nothing
        torch.testing.assert_close(many[name], one[name], **TOLERANCE, msg=name)
    curves = [pd.read_csv(files / f"watched-{n}" / "loss.csv").dropna(subset=["kl"]) for n in (1, 2)]
    assert list(curves[0]["step"]) == list(curves[1]["step"]) == [2, 4] and (curves[0]["kl"] > 0).all()
    for column in ("kl", "vers_ce_delta"):
        assert curves[1][column].to_numpy() == pytest.approx(curves[0][column].to_numpy(), rel=1e-6)


def processes_of(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_killed_sharded_job_resumes_to_the_uninterrupted_weights(files, tmp_path):
    """SIGKILL of every process of a sharded run after its first checkpoint; the rerun resumes (the
    trained shards and the optimizer through torch.distributed.checkpoint) and ends bit for bit where
    the uninterrupted sharded run ends."""
    import signal
    import time

    train = {**TRAIN, "steps": 60}
    run = Run(name="l2", method="l2", params={"lambda": 1.0}, train=TrainSettings(**train))
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}

    def command(out, checkpoints):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "cofi",
                "finetune", "--model", str(files / "base"), "--run-spec", json.dumps(run.spec()), "--train",
                str(files / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt), "--dtype",
                "float64", "--compute", json.dumps({"checkpoint_every": 5, "device": "cpu"}), "--checkpoint-dir", str(checkpoints),
                "--out", str(out / "model"), "--curve", str(out / "loss.csv")]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    whole = tmp_path / "whole"
    done = subprocess.run(command(whole, tmp_path / "whole-checkpoints"), capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    killed, checkpoints = tmp_path / "killed", tmp_path / "killed-checkpoints"
    job = subprocess.Popen(command(killed, checkpoints), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("step-*")):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.01)
    # torchrun and both of its workers (torchrun starts them in sessions of their own), as a preemption does.
    for pid in processes_of(str(killed)):
        os.kill(pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert not processes_of(str(killed))
    assert not (killed / "model").exists()
    assert list((next(checkpoints.glob("step-*")) / "shards").iterdir())  # every process's shards

    again = subprocess.run(command(killed, checkpoints), capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout
    resumed, uninterrupted = load_file(killed / "model" / "model.safetensors"), load_file(whole / "model" / "model.safetensors")
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name
    assert not checkpoints.exists()  # removed once the outputs were written


def test_only_the_first_process_holds_the_whole_model(tmp_path, tokenizer, tiny_world):
    """Process 0 reads the weights; the others build the model on the meta device and receive their
    shards: by the end of loading, their peak host memory is lower by about the model's size."""
    arch = {"layers": 4, "hidden": 512, "intermediate": 2048, "heads": 8, "max_len": 32}
    model = build_llama(len(tokenizer), arch, seed=0).double()
    model_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    save_model(model, tokenizer, tmp_path / "base")
    del model
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tiny_world["rotate_train"][:12]))
    run = Run(name="full", method="full", train=TrainSettings(lr=1e-3, steps=2, batch_size=4))
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "cofi",
                           "finetune", "--model", str(tmp_path / "base"), "--run-spec", json.dumps(run.spec()), "--train",
                           str(tmp_path / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt),
                           "--compute", '{"device": "cpu"}', "--dtype", "float64", "--out", str(tmp_path / "out"), "--curve", str(tmp_path / "loss.csv")],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = json.loads((tmp_path / "out" / "cofi_run.json").read_text())["loading_peak_host_memory_mb"]
    assert model_mb > 100 and first - second > 0.75 * model_mb, (first, second, model_mb)


def test_half_precision_loads_one_stored_copy_and_keeps_frozen_weights_in_the_compute_dtype(tmp_path, tokenizer,
                                                                                               tiny_world):
    """A bfloat16 model trained in bf16 over two processes, half of its layers' FFN trained: process 0 holds the
    weights as stored, once (no float32 copy of the whole model: that alone would be twice their size), and the
    shards keep float32 masters of the trained weights only."""
    arch = {"layers": 8, "hidden": 1024, "intermediate": 4096, "heads": 8, "max_len": 32}
    model = build_llama(len(tokenizer), arch, seed=0).to(torch.bfloat16)
    stored_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    save_model(model, tokenizer, tmp_path / "base")
    del model
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tiny_world["rotate_train"][:8]))
    run = Run(name="region", method="region", train=TrainSettings(lr=1e-3, steps=1, batch_size=4),
              params={"range": ["1/2", "1"], "modules": ["ffn"], "groups": GROUPS})
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "cofi",
                           "finetune", "--model", str(tmp_path / "base"), "--run-spec", json.dumps(run.spec()), "--train",
                           str(tmp_path / "train.jsonl"), "--seed", "0", "--prompt", json.dumps(prompt),
                           "--dtype", "bfloat16", "--compute", json.dumps({"precision": "bf16", "device": "cpu"}),
                           "--out", str(tmp_path / "out"), "--curve", str(tmp_path / "loss.csv")],
                          capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "cofi_run.json").read_text())
    assert record["sharded_dtypes"] == {"trained": ["float32"], "frozen": ["bfloat16"]}
    first, second = record["loading_peak_host_memory_mb"]
    assert stored_mb > 250 and 0.75 * stored_mb < first - second < 1.5 * stored_mb, (first, second, stored_mb)
    saved = load_file(tmp_path / "out" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.bfloat16}  # written back in the stored dtype


def test_sharded_importance_gives_one_process_importance(files, processes=3):
    """The importance job over 3 processes (FSDP2, gloo, float64; each runs its parts of every batch) writes
    the importance one process writes from the same parts (micro_batch_size = batch / processes), up to the float32
    the file keeps (the sums run in another order)."""
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    options = {"dropout": 0.1, "batches": 2, "batch_size": 6, "signed": False, "seed": 0}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    written = {}
    for count in (1, processes):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={count}"] \
            if count > 1 else [sys.executable]
        given = options if count > 1 else {**options, "micro_batch_size": 6 // processes}
        out = files / f"importance-{processes}-{count}.safetensors"
        done = subprocess.run([*launcher, "-m", "cofi", "importance", "--model", str(files / "base"), "--data",
                               str(files / "train.jsonl"), "--options", json.dumps(given), "--prompt", json.dumps(prompt),
                               "--device", "cpu", "--dtype", "float64", "--out", str(out), "--plot",
                               str(out.with_suffix(".png"))], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        written[count] = load_file(out)
    assert written[1].keys() == written[processes].keys()
    for kind, values in written[1].items():
        torch.testing.assert_close(written[processes][kind], values, rtol=1e-5, atol=1e-6)
        assert values.abs().sum() > 0


def test_srun_tasks_become_torch_distributed_ranks():
    """Two nodes of four tasks each (srun, one task per GPU): the variables of the sixth task."""
    from cofi.training.distributed import from_slurm

    slurm = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_NODES": "2",
             "SLURM_NNODES": "2", "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.7", "SLURM_JOB_ID": "123456"}
    assert from_slurm(slurm) == {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
                                 "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": str(29500 + 3456)}
    assert from_slurm({**slurm, "RANK": "0"}) == {}  # torchrun (or another launcher) set them already
    assert from_slurm({**slurm, "SLURM_NTASKS": "1"}) == {}  # one task: a single process
    with pytest.raises(RuntimeError, match="7 tasks do not split evenly over 2 nodes"):
        from_slurm({**slurm, "SLURM_NTASKS": "7"})


@pytest.mark.parametrize("case, sharding", [("full", "hybrid"), ("sam", "hybrid"), ("full", "flat")])
def test_two_nodes_shard_hybrid_or_flat(files, single, case, sharding, tmp_path):
    """Two torchrun agents on this machine stand in for two nodes of two processes each (c10d
    rendezvous, as across real nodes): hybrid sharding (a 2-D mesh: shard within a node, replicate across) and flat
    sharding (every weight over all four) train one process's weights; SAM's norm is summed over the shards only,
    not over the replicas."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    method, params = CASES[case]
    params = dict(params)
    run = Run(name=case, method=method, train=TrainSettings(**TRAIN), sam_rho=params.pop("sam_rho", None), params=params)
    prompt = {"template": TEMPLATE, "mask_prompt": True, "max_len": 32}
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    agents = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}", "--nproc-per-node=2",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=cofi-test", "-m", "cofi", "finetune",
         "--model", str(files / "base"), "--run-spec", json.dumps(run.spec()), "--train", str(files / "train.jsonl"),
         "--seed", "0", "--prompt", json.dumps(prompt), "--dtype", "float64",
         "--out", str(out / "model"), "--curve", str(out / "loss.csv"),
         "--compute", json.dumps({"sharding": sharding, "device": "cpu"})],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path) for node in (0, 1)]
    outputs = [agent.communicate(timeout=600)[0] for agent in agents]
    assert all(agent.returncode == 0 for agent in agents), "\n".join(o[-3000:] for o in outputs)
    record = json.loads((out / "model" / "cofi_run.json").read_text())
    mesh = {"replicate": 2, "shard": 2} if sharding == "hybrid" else {"shard": 4}
    assert record["processes"] == 4 and record["sharded"] and record["mesh"] == mesh
    many, one = load_file(out / "model" / "model.safetensors"), single[case]
    for name in one:
        torch.testing.assert_close(many[name], one[name], **TOLERANCE, msg=name)


def test_accumulation_holds_only_this_processs_shards_of_the_gradients(files, single):
    """grad_accum 2 on 2 processes. After the first micro-batch, by default, each process holds the gradients of its
    own shards (about half the trained weights' bytes): every micro-batch reduce-scatters. accumulate_unsharded
    defers the reduction to the last micro-batch, so each holds the whole gradient until then. Both train one
    process's weights."""
    trained_mb = sum(t.numel() * t.element_size() for t in single["full"].values()) / 2**20
    held = {}
    for name, compute in (("accumulate", {}), ("accumulate_unsharded", {"accumulate_unsharded": True})):
        weights = finetune(files, name, "full", {}, processes=2, compute=compute)
        for key, tensor in single["full"].items():
            torch.testing.assert_close(weights[key], tensor, **TOLERANCE, msg=key)
        record = json.loads((files / f"{name}-2" / "model" / "cofi_run.json").read_text())
        held[name] = record["gradient_mb_after_first_micro_batch"]
    assert all(0.45 * trained_mb < mb < 0.6 * trained_mb for mb in held["accumulate"]), (held, trained_mb)
    assert all(0.98 * trained_mb < mb < 1.02 * trained_mb for mb in held["accumulate_unsharded"]), (held, trained_mb)
