import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cofi.models.loading import build_llama, build_word_tokenizer
from cofi.config.settings import PromptSettings
from cofi.data.world import WorldSpec, build_world, vocabulary

TEMPLATE = PromptSettings.template
REPO = Path(__file__).resolve().parent.parent


def copy_workflow(workdir: Path) -> Path:
    """The workflow (Snakefile, config, rules, profiles, envs) and the tiny config as tiny.yaml, in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    for name in ("rules", "workflow", "envs"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copy(REPO / "tests" / "tiny_config.yaml", workdir / "tiny.yaml")
    return workdir


def snakemake_environment() -> dict[str, str]:
    """This environment with this Python's bin first, so every job runs this Python and this cofi."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir, env=env or snakemake_environment(), capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run locally (--cores 2) to the end, in a copy of the workflow: one run for the whole session
    (the end-to-end tests read it and extend it; the SLURM test compares its tables with it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_run") / "wf")
    done = snakemake(workdir, "--configfile", "tiny.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


# Unit tests that start several processes, Snakemake or a job server: make test-fast leaves them out with
# tests/workflow/ (marked e2e); make test runs everything.
SLOW = ("tests/training/test_sharding.py", "tests/models/test_cross_machine.py", "tests/evaluation/test_lm_eval.py",
        "tests/evaluation/test_harness_suites.py", "tests/models/test_hub.py",
        "tests/devtools/", "tests/config/test_start_up_checks.py", "tests/models/test_cluster.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(item.fspath).relative_to(REPO).as_posix()
        if path.startswith("tests/workflow/"):
            item.add_marker(pytest.mark.e2e)
        elif path.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


def skip_or_fail(reason: str):
    """Skip a test whose part beside cofi (the SLURM cluster, the real chat model's file) is missing; under
    CI (COFI_CI=1, set by .ci/run) fail instead, so CI never counts a skipped test as passing."""
    if os.environ.get("COFI_CI") == "1":
        pytest.fail(f"COFI_CI=1: this test must run here, but {reason}")
    pytest.skip(reason)
TINY_ARCH = {"layers": 2, "hidden": 32, "intermediate": 64, "heads": 4, "max_len": 32}


@pytest.fixture(scope="session")
def tiny_spec():
    return WorldSpec(seed=3, entities=6, reason_train=50, instruct_train=50, rotate_train=30, test_items=10, know_repeats=2)


@pytest.fixture(scope="session")
def tiny_world(tiny_spec):
    return build_world(tiny_spec)


@pytest.fixture(scope="session")
def tokenizer(tiny_spec):
    return build_word_tokenizer(vocabulary(tiny_spec))


@pytest.fixture(scope="session")
def chat_tokenizer(tmp_path_factory):
    """The tiny GGUF's tokenizer, imported as a user's would be: byte-level BPE with a ChatML template."""
    from cofi.models.gguf import import_gguf
    from cofi.models.loading import load_tokenizer

    from tiny_gguf import write_tiny_gguf

    where = tmp_path_factory.mktemp("chat")
    write_tiny_gguf(where / "tiny.gguf")
    import_gguf(where / "tiny.gguf", where / "model", log=lambda _: None)
    return load_tokenizer(where / "model")


@pytest.fixture
def examples(tokenizer, tiny_world):
    """The tiny world's rotate task as training examples (the embedded template, 32 tokens)."""
    from cofi.data.prompts import Prompter
    from cofi.training.loop import tokenize_dataset

    return tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)


@pytest.fixture
def config():
    """The embedded default's config file as read (no defaults filled in)."""
    from cofi.config.checks import load_config

    return load_config(REPO / "config.yaml")


@pytest.fixture
def tiny_model(tokenizer):
    torch.set_num_threads(1)
    return build_llama(len(tokenizer), TINY_ARCH, seed=0).eval()
