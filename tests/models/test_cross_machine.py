"""The embedded base model does not follow the CPU: `python -m cofi build-base` (the command the build_base rule
runs) asked for the instruction sets another x86 machine would use gives the same weights and the same scores.

The default world and base model, trained 100 steps instead of 600: a minute of building here, and enough for
unpinned kernels to diverge (without the pin the scalar build's weights were 1.2 % from the AVX2 build's, other
predictions on every suite, 1 to 48 of 64 items, and other Know and Reason scores; after 600 steps, 37 %).
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO

STEPS = 100
# What a job's environment asks of torch (ATen) and MKL on the machines a user may have. This machine plays each:
# torch falls back to the best path its CPU has, so "avx512" is only asked where the CPU has it.
MACHINES = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
            "scalar": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}}
if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
    MACHINES["avx512"] = {"ATEN_CPU_CAPABILITY": "avx512"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{machine: base model directory}, each built by its own `build-base` process."""
    root = tmp_path_factory.mktemp("cross_machine")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    world, base = config["embedded"]["world"], config["embedded"]["base"]
    base = {**base, "train": {**base["train"], "steps": STEPS}}
    run = lambda *args, env=None: subprocess.run([sys.executable, "-m", "cofi", *args], cwd=root, text=True,  # noqa: E731
                                                 capture_output=True, timeout=600, env={**os.environ, **(env or {})})
    made = run("make-data", "--suites", "world", "--settings", json.dumps(world), "--out-dir", "data")
    assert made.returncode == 0, made.stderr[-2000:]
    models = {}
    for machine, env in MACHINES.items():
        job = {"world": world, "seed": base["seed"], "train": base["train"], "train_data": "data/versatility_train.jsonl",
               "architecture": {k: v for k, v in base.items() if k not in ("seed", "train")},
               "prompt": config["prompt"], "out": machine}
        done = run("build-base", "--spec", json.dumps(job), "--threads", "2", env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "pinned CPU kernels: torch AVX2" in done.stdout, done.stdout[-1000:]
        models[machine] = root / machine
    return root, models


def test_the_base_models_weights_are_the_same_bit_for_bit(built):
    _, models = built
    weights = {machine: load_file(path / "model.safetensors") for machine, path in models.items()}
    reference = weights.pop("avx2")
    for machine, tensors in weights.items():
        assert tensors.keys() == reference.keys()
        differing = [name for name in reference if not torch.equal(tensors[name], reference[name])]
        gap = sum((tensors[n].double() - reference[n].double()).norm() ** 2 for n in reference) ** 0.5
        size = sum(reference[n].double().norm() ** 2 for n in reference) ** 0.5
        assert not differing, (f"{machine}: {len(differing)} tensors differ from avx2's (relative difference "
                               f"{gap / size:.3g}), e.g. {differing[:3]}")


def test_the_base_models_score_the_same_on_every_suite(built):
    """Every suite of the world, 64 items each: the same score (and the same predictions) from each model."""
    from cofi.models.loading import load_model
    from cofi.data.prompts import Prompter
    from cofi.config.settings import PromptSettings, from_dict
    from cofi.evaluation.tasks import TASK_TYPES
    from cofi.data.world import SUITE_TYPES, TASK_TYPES as WORLD_TASKS

    root, models = built
    prompt = from_dict(PromptSettings, yaml.safe_load((REPO / "config.yaml").read_text())["prompt"], "prompt")
    metrics = {"bio": "rouge_l", "rotate": "exact_match"}
    suites = {**{name: (kind, metrics[name]) for name, kind in WORLD_TASKS.items()},
              **{name: (kind, TASK_TYPES[kind].metrics[0]) for name, kind in SUITE_TYPES.items()}}
    scored = {}
    for machine, path in models.items():
        model, tokenizer = load_model(str(path))
        prompter = Prompter.of(tokenizer, prompt)
        scored[machine] = {}
        for name, (kind, metric) in suites.items():
            records = TASK_TYPES[kind].read(root / "data" / f"{name}_test.jsonl")[:64]
            scored[machine][name] = TASK_TYPES[kind].score(model, prompter, records, metric, 64)
    reference = scored.pop("avx2")
    assert 0 < reference["know"]["score"] < 100  # a half-trained model: the comparison can tell
    for machine, scores in scored.items():
        assert scores == reference, machine


def test_the_jobs_that_load_torch_are_pinned_and_the_job_server_starts_pinned():
    from cofi.models import kernels
    from cofi.devtools.jobserver import serving
    from cofi.jobs import JOBS, job_class

    pinned = {command for command in JOBS if job_class(command).computes}
    assert pinned == {"build-base", "import-gguf", "finetune", "evaluate", "importance", "landscape", "matrix-snr"}
    with serving({**os.environ, "ATEN_CPU_CAPABILITY": "default"}) as environment:
        assert kernels.pinned(environment)


def test_bf16_asks_for_native_kernels_and_a_native_job_drops_the_pin():
    """compute.precision bf16 runs CPU jobs on the CPU's own kernels (the pinned AVX2 paths emulate bf16): the
    environment a job computes in drops the pin where COFI_CPU_KERNELS says native, and adds it otherwise; a native
    job server starts without it."""
    from cofi.config.settings import ComputeSettings
    from cofi.devtools.jobserver import serving
    from cofi.models import kernels

    assert ComputeSettings(precision="bf16").cpu_kernels == "native"
    assert ComputeSettings(precision="fp32").cpu_kernels == ComputeSettings(precision="fp16").cpu_kernels == "pinned"
    plain = {"HOME": "/home/u", "ATEN_CPU_CAPABILITY": "default"}
    assert kernels.pinned(kernels.environment(plain)) and kernels.environment(plain)["HOME"] == "/home/u"
    native = kernels.environment({**plain, **kernels.PINNED, kernels.KERNELS_VARIABLE: "native"})
    assert native == {"HOME": "/home/u", kernels.KERNELS_VARIABLE: "native"}
    with serving({**os.environ, kernels.KERNELS_VARIABLE: "native"}) as environment:
        assert not set(kernels.PINNED) & set(environment)


def test_a_job_computes_on_the_kernels_its_environment_asks_for():
    """A computing job started pinned under COFI_CPU_KERNELS=native starts itself again without the pin, and says
    so in its log; without the variable it is pinned (here: an evaluation with nothing to score)."""
    from cofi.models import kernels

    spec = json.dumps({"scorings": [], "prompt": {}, "device": "cpu"})
    for wanted, line in (("native", "native CPU kernels (COFI_CPU_KERNELS=native)"), (None, "pinned CPU kernels")):
        environment = {name: value for name, value in os.environ.items()
                       if name not in (kernels.KERNELS_VARIABLE, "COFI_JOB_SERVER")}
        environment |= {**kernels.PINNED, **({kernels.KERNELS_VARIABLE: wanted} if wanted else {})}
        done = subprocess.run([sys.executable, "-m", "cofi", "evaluate", "--spec", spec], env=environment,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert line in done.stdout + done.stderr, (done.stdout + done.stderr)[-1000:]
