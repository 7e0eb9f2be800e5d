"""The job server (cofi/devtools/jobserver.py): a job run in it is the job run alone, only started sooner."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cofi.models.loading import build_llama, save_model

from conftest import REPO, TEMPLATE, TINY_ARCH

SPEC = {"name": "full", "method": "full", "params": {}, "sam_rho": None, "equal_compute": False,
        "train": {"lr": 3e-3, "steps": 30, "batch_size": 8, "grad_accum": 1, "warmup_ratio": 0.0, "weight_decay": 0.0,
                  "max_grad_norm": 1.0, "log_every": 10}}


@pytest.fixture(scope="module")
def job(tmp_path_factory, tokenizer, tiny_world):
    """A tiny model, its training data, and the finetune command line of a job that trains it (cwd: the repo)."""
    root = tmp_path_factory.mktemp("jobserver")
    save_model(build_llama(len(tokenizer), TINY_ARCH, seed=0), tokenizer, root / "base")
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tiny_world["rotate_train"]))

    def command(out: str, steps: int = 30) -> list[str]:
        spec = {**SPEC, "train": {**SPEC["train"], "steps": steps}}
        return [sys.executable, "-m", "cofi", "finetune", "--model", str(root / "base"), "--train",
                str(root / "train.jsonl"), "--run-spec", json.dumps(spec), "--seed", "0", "--prompt",
                json.dumps({"template": TEMPLATE}), "--compute", '{"device": "cpu"}', "--out", str(root / out / "model"),
                "--curve", str(root / out / "loss.csv")]

    return root, command


def under_server(script: str, root: Path, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    """``python -m cofi.devtools.jobserver bash -c SCRIPT`` from the repo: SCRIPT's jobs may run in the server."""
    environment = {k: v for k, v in os.environ.items() if k != "COFI_JOB_SERVER"} | env
    return subprocess.run([sys.executable, "-m", "cofi.devtools.jobserver", "bash", "-c", script], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def quoted(command: list[str]) -> str:
    import shlex

    return " ".join(map(shlex.quote, command))


def test_a_job_in_the_server_writes_what_it_writes_alone(job):
    root, command = job
    alone = subprocess.run(command("alone"), cwd=REPO, capture_output=True, text=True, timeout=300,
                           env={k: v for k, v in os.environ.items() if k != "COFI_JOB_SERVER"})
    assert alone.returncode == 0, alone.stderr[-2000:]
    done = under_server(f"{quoted(command('warm'))} > {root}/warm.log 2>&1; echo status $?", root)
    assert done.returncode == 0 and "status 0" in done.stdout, done.stderr[-2000:]
    log = (root / "warm.log").read_text()
    assert "cofi: job server process" in log and "running in this process" not in log, log[-2000:]
    for name in ("model/model.safetensors", "model/config.json", "model/tokenizer.json", "loss.csv"):
        if name == "loss.csv":  # its seconds column is the wall clock
            def strip(text: str) -> list[list[str]]:
                rows = [line.split(",") for line in text.splitlines()]
                clock = rows[0].index("seconds")
                return [row[:clock] + row[clock + 1:] for row in rows]
            assert strip((root / "warm" / name).read_text()) == strip((root / "alone" / name).read_text())
        else:
            assert (root / "warm" / name).read_bytes() == (root / "alone" / name).read_bytes(), name
    assert "training" in log and "saved full" in log  # the job's own log lines reach its log file


def test_exit_status_and_errors_come_back(job):
    root, command = job
    bad = command("bad")
    bad[bad.index("--model") + 1] = str(root / "no-such-model")
    done = under_server(f"{quoted(bad)}; echo status $?", root)
    assert "status 2" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "no-such-model" in done.stderr and "no such directory" in done.stderr
    assert "cofi: job server process" in done.stderr  # it failed in the server, not in a fallback


def test_a_job_whose_environment_differs_runs_in_its_own_process(job):
    root, command = job
    done = under_server(f"RANK=0 WORLD_SIZE=1 {quoted(command('rank'))} 2>&1 | grep -E 'running in this process|job server'",
                        root)
    assert "running in this process, not the job server: its environment differs from the server's in RANK, WORLD_SIZE" \
        in done.stdout, done.stdout + done.stderr[-2000:]
    assert (root / "rank" / "model" / "model.safetensors").is_file()


def test_a_job_carrying_what_the_imports_set_runs_in_the_server(tmp_path, monkeypatch):
    """A Snakefile that checks an instruction suite imports lm-evaluation-harness, which sets variables
    (HF_XET_HIGH_PERFORMANCE, KMP_INIT_AT_FORK, ...) that every job then inherits: the server, whose own imports set
    the same values, still takes such a job; a different value of one of them is still a difference."""
    # What the imports set, from an environment without them (an earlier test in this process may have set them)
    found = subprocess.run([sys.executable, "-c", "import json, os; from cofi.devtools.jobserver import _preload; "
                            "before = dict(os.environ); _preload(); "
                            "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))"],
                           cwd=REPO, capture_output=True, text=True, timeout=300,
                           env={name: os.environ[name] for name in ("HOME", "PATH") if name in os.environ})
    imported = json.loads(found.stdout)
    assert imported, "the imports set nothing: this test would not tell"
    for name in imported:  # the server starts without them, as under a Snakemake that did not import the harness
        monkeypatch.delenv(name, raising=False)
    job = quoted([sys.executable, "-m", "cofi", "evaluate", "--spec",
                  json.dumps({"scorings": [], "prompt": {}, "device": "cpu"})])
    setting = lambda values: " ".join(f"{k}={v!r}" for k, v in values.items())  # noqa: E731
    same = under_server(f"env {setting(imported)} {job} 2>&1", tmp_path)
    assert "cofi: job server process" in same.stdout and "running in this process" not in same.stdout, same.stdout
    name = sorted(imported)[0]
    other = under_server(f"env {setting({**imported, name: imported[name] + 'x'})} {job} 2>&1", tmp_path)
    assert f"its environment differs from the server's in {name}" in other.stdout, other.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.parametrize("signum, status", [(signal.SIGKILL, None), (signal.SIGTERM, 143)])
def test_a_stopped_client_stops_its_job(job, signum, status):
    """Snakemake stops a job by signalling its shell: SIGTERM reaches the job through its client; a client
    killed outright takes its job with it. Nothing is left once the command has ended."""
    root, command = job
    script = textwrap.dedent(f"""\
        {quoted(command(f"stopped{signum}", steps=100000))} > {root}/stopped{signum}.log 2>&1 &
        client=$!
        for i in $(seq 600); do grep -q 'step 10/' {root}/stopped{signum}.log && break; sleep 0.2; done
        kill -{int(signum)} $client; wait $client; echo "client $?"
        sleep 5
    """)
    wrapper = subprocess.Popen([sys.executable, "-m", "cofi.devtools.jobserver", "bash", "-c", script], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={k: v for k, v in os.environ.items() if k != "COFI_JOB_SERVER"})
    try:
        deadline, server, jobs = time.time() + 120, None, []
        while time.time() < deadline and not jobs:  # the server and its forked job, while the job trains
            servers = [p for p in _children(wrapper.pid) if b"--serve" in Path(f"/proc/{p}/cmdline").read_bytes()]
            server = servers[0] if servers else None
            jobs = _children(server) if server else []
            time.sleep(0.1)
        assert jobs, "the job never started in the server"
        line = wrapper.stdout.readline()  # the client has been stopped; the command goes on for 5 s
        time.sleep(1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in jobs), "the job outlived its client"
        assert Path(f"/proc/{server}").exists()  # the server serves on
        out, err = wrapper.communicate(timeout=120)
    finally:
        wrapper.kill()
    assert wrapper.returncode == 0, err[-2000:]
    assert line.startswith("client") and (status is None or line.strip() == f"client {status}"), line
    assert not Path(f"/proc/{server}").exists(), "the server outlived the command"


def test_the_server_forks_only_while_it_is_one_thread():
    """After the server's imports, under its own settings, its process is one thread; a second thread (or CUDA in
    use) makes it refuse jobs, which then run in their own processes."""
    from cofi.devtools.jobserver import SINGLE_THREADED

    check = textwrap.dedent("""
        import threading, time
        from cofi.devtools.jobserver import Server, fork_hazard
        from cofi.devtools import jobserver
        jobserver._preload()
        print("after the imports:", fork_hazard() or "one thread")
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        print("with a thread:", fork_hazard())
    """)
    environment = {k: v for k, v in os.environ.items() if k != "COFI_JOB_SERVER"} | SINGLE_THREADED
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "after the imports: one thread" in done.stdout, done.stdout
    assert "with a thread: the server runs 2 threads" in done.stdout, done.stdout


def test_a_gpu_job_runs_as_its_own_process(monkeypatch):
    from cofi.devtools import jobserver

    job = {"model": "m", "train_data": "t.jsonl", "run": {"name": "full", "method": "full", "params": {}, "train": {}},
           "prompt": {}, "out": "o", "curve": "c.csv"}
    finetune = lambda **compute: ["finetune", "--spec", json.dumps({**job, "compute": compute})]  # noqa: E731
    assert jobserver.wants_gpu(finetune(device="cuda:1"), {})  # the device in the job's spec
    assert not jobserver.wants_gpu(finetune(device="cpu"), {})
    assert not jobserver.wants_gpu([*finetune(device="cuda"), "--compute", '{"device": "cpu"}'], {})  # a flag overrides
    assert not jobserver.wants_gpu(["table", "--scores", "s.json", "--out-dir", "t"], {})  # loads no model
    monkeypatch.setattr(jobserver.os.path, "exists", lambda path: path == "/dev/nvidiactl")
    assert jobserver.wants_gpu(finetune(), {})  # auto, on a machine with an NVIDIA device
    assert jobserver.wants_gpu(["evaluate", "--model"], {})  # a command it cannot read: as auto (the job says why)
    assert not jobserver.wants_gpu(finetune(), {"CUDA_VISIBLE_DEVICES": ""})  # hidden: the CPU
    monkeypatch.setenv("COFI_JOB_SERVER", "/nonexistent/socket")
    assert jobserver.delegate(finetune(device="cuda")) is None  # never sent to the server


@pytest.mark.parametrize("server", [False, True], ids=["alone", "in the server"])
def test_a_spec_too_long_for_an_argument_reaches_the_job_on_stdin(tmp_path, server):
    """The tables' rules pipe their spec (job_command's spec_on_stdin): 200 KB, past Linux's 128 KiB for one
    argument, reaches the job whole, alone and forked by the job server (which must not read it first); the job
    then names both of its keys, the one before the padding and the one after it."""
    spec = json.dumps({"a_padding": "x" * 200_000, "zz_last": 1})
    script = tmp_path / "job.sh"  # Snakemake too runs a long command from a script file
    script.write_text(f"printf '%s' '{spec}' | {sys.executable} -m cofi claims --spec -; echo status $?\n")
    if server:
        done = under_server(f"bash {script}", tmp_path)
        assert "cofi: job server process" in done.stderr, done.stderr[-2000:]
    else:
        done = subprocess.run(["bash", str(script)], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k != "COFI_JOB_SERVER"})
    assert "status 2" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "unknown key(s) ['a_padding', 'zz_last']" in done.stderr, done.stderr[-2000:]
    if not server:  # the limit this works around: the same spec as an argument
        script.write_text(f"{sys.executable} -m cofi claims --spec '{spec}'\n")
        as_argument = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
        assert as_argument.returncode == 126 and "Argument list too long" in as_argument.stderr
