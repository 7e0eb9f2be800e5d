"""The tiny config through Snakemake's SLURM executor on a one-node SLURM cluster started here.

The cluster is Debian's slurm-wlm and munge (installed with apt-get when missing), configured in a
tmp dir (no accounting, so job states come from squeue) and stopped by PID at the end. The SLURM
run must give the same tables as a local run, also after one of its finetune jobs is cancelled
with scancel while it trains (the profile's retries resubmit it).
"""

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, copy_workflow, skip_or_fail

pytestmark = pytest.mark.e2e
try:
    import snakemake_executor_plugin_slurm  # noqa: F401
except ImportError:
    if os.environ.get("COFI_CI") == "1":  # CI must run this test, never skip it
        raise
    pytest.skip("needs the SLURM executor plugin: pip install -e '.[slurm]'", allow_module_level=True)

DAEMONS = ("munged", "slurmctld", "slurmd")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _install_slurm() -> None:
    """Debian's slurm-wlm and munge, if a daemon or a client command is missing; skip where impossible."""
    missing = [name for name in (*DAEMONS, "sbatch", "squeue", "scancel", "sinfo") if not _which(name)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        skip_or_fail(f"SLURM is not installed ({', '.join(missing)} missing) and apt-get cannot install it here (needs root and apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            skip_or_fail(f"could not install SLURM: {' '.join(command)} failed: {done.stderr[-1000:]}")
    still = [name for name in (*DAEMONS, "sbatch") if not _which(name)]
    if still:
        skip_or_fail(f"slurm-wlm and munge installed, but {', '.join(still)} still missing")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _real_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 9 // 10  # slurmd drains a node that has less than it claims
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _read_pid(path: Path, name: str) -> int | None:
    """The PID in a daemon's pid file, if that process is still that daemon."""
    try:
        pid = int(path.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == name else None


def _stop(pid: int, timeout: float = 15) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


class Cluster:
    """A running one-node cluster: its config, its environment, and SLURM commands run in it."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.bin = root / "bin"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr}")
        return done.stdout

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job the controller still knows (MinJobAge is an hour): id -> (comment, state)."""
        out = self.run("squeue", "--states=all", "-h", "-o", "%i|%k|%T")
        return {job: (comment, state) for job, comment, state in (line.split("|") for line in out.splitlines() if line)}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.root / "log").glob("*")))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """munged, slurmctld and slurmd as daemons, all state in a tmp dir; stopped by PID at teardown."""
    _install_slurm()
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log", "bin"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    cpus = min(2, os.cpu_count() or 1)
    pids = {"munged": root / "munge" / "munged.pid", "slurmctld": root / "slurmctld.pid", "slurmd": root / "slurmd.pid"}
    (root / "slurm.conf").write_text(f"""\
ClusterName=cofitest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={pids['slurmctld']}
SlurmdPidFile={pids['slurmd']}
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_real_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    # Snakemake's jobstep plugin (0.6.1) drops every SLURM_* variable but a few from the environment
    # of the `srun` it runs inside each job, SLURM_CONF included; a real cluster has its config where
    # srun looks by default, this one has it in tmp: this srun puts SLURM_CONF back.
    srun = root / "bin" / "srun"
    srun.write_text(f"#!/bin/sh\nSLURM_CONF={root / 'slurm.conf'} exec {_which('srun')} \"$@\"\n")
    srun.chmod(0o755)
    cluster = Cluster(root)
    try:
        subprocess.run([_which("munged"), "--force", f"--key-file={key}", f"--socket={root}/munge/munge.sock",
                        f"--pid-file={pids['munged']}", f"--log-file={root}/log/munged.log",
                        f"--seed-file={root}/munge/munged.seed"], check=True, timeout=30)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_which(daemon), "-f", str(cluster.conf)], env=cluster.env, check=True, timeout=30)
        deadline = time.time() + 60
        while time.time() < deadline:
            if cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the node never became idle:\n{cluster.run('sinfo', '-N', check=False)}\n{cluster.logs()}")
        yield cluster
    finally:
        if _read_pid(pids["slurmctld"], "slurmctld"):
            cluster.run("scancel", f"--user={getpass.getuser()}", check=False)  # only this cluster's jobs
            deadline = time.time() + 20
            while time.time() < deadline and any(s in ("RUNNING", "COMPLETING") for _, s in cluster.jobs().values()):
                time.sleep(0.5)
        for name in reversed(DAEMONS):  # slurmd, slurmctld, then munged
            pid = _read_pid(pids[name], name)
            if pid:
                _stop(pid)


def _snakemake(workdir: Path, env: dict, *args: str) -> subprocess.Popen:
    """Snakemake in the background, its output to workdir/snakemake.out."""
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=60)
        raise


@pytest.fixture(scope="module")
def runs(slurm_cluster, request, tmp_path_factory):
    """The tiny config through SLURM, one finetune job cancelled, in a fresh copy of the workflow; the session's
    local run of the same config (conftest's ``tiny_run``) runs meanwhile.

    Jobs inherit this environment (sbatch --export=ALL): the venv's bin first in PATH, PYTHONPATH if set, so every
    job runs this Python and this cofi.
    """
    venv_bin = str(Path(sys.executable).parent)
    env = {**slurm_cluster.env, "PATH": os.pathsep.join([str(slurm_cluster.bin), venv_bin, os.environ["PATH"]])}
    slurm_dir = copy_workflow(tmp_path_factory.mktemp("slurm_run") / "wf")
    start = time.time()
    slurm = _snakemake(slurm_dir, env, "--workflow-profile", "workflow/profiles/slurm-cpu", "--configfile", "tiny.yaml")
    cancelled = None
    try:
        # Cancel a finetune job once its command has started (its log file exists): rule name and
        # wildcards are in the job's comment, "rule_finetune_wildcards_<run>_<task>_<seed>".
        deadline = time.time() + 900
        while cancelled is None and slurm.poll() is None and time.time() < deadline:
            started = {f"rule_finetune_wildcards_{p.parent.parent.name}_{p.parent.name}_{p.stem.removeprefix('seed')}"
                       for p in (slurm_dir / "results/tiny/logs/finetune").glob("*/*/seed*.log")}
            for job, (comment, state) in slurm_cluster.jobs().items():
                if state == "RUNNING" and comment in started:
                    time.sleep(0.5)
                    slurm_cluster.run("scancel", job)
                    cancelled = (job, comment)
                    break
            else:
                time.sleep(0.5)
        local_dir = request.getfixturevalue("tiny_run")  # while the SLURM run goes on (a session fixture: once)
        slurm_rc = _finish(slurm, timeout=max(1, deadline - time.time()))
        slurm_seconds = time.time() - start
    finally:
        if slurm.poll() is None:
            slurm.terminate()
    slurm_out = (slurm_dir / "snakemake.out").read_text()
    assert slurm_rc == 0, slurm_out[-5000:] + slurm_cluster.logs()
    print(f"SLURM run: {slurm_seconds:.0f} s")
    return {"local": local_dir, "slurm": slurm_dir, "out": slurm_out, "cancelled": cancelled, "cluster": slurm_cluster}


def test_jobs_see_this_python_and_this_cofi(slurm_cluster, tmp_path):
    """sbatch exports the submitting environment: the venv first in PATH, and PYTHONPATH if set."""
    import cofi

    env = {**slurm_cluster.env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    out = tmp_path / "job.out"
    job = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap",
                          "python -c 'import sys, cofi; print(sys.prefix); print(cofi.__file__)'"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert job.returncode == 0, job.stderr
    deadline = time.time() + 120
    while slurm_cluster.jobs()[job.stdout.strip()][1] != "COMPLETED" and time.time() < deadline:
        time.sleep(0.2)
    assert out.read_text().split() == [sys.prefix, cofi.__file__]


def test_every_job_went_through_sbatch(runs):
    submitted = SUBMITTED.findall(runs["out"])
    assert len(submitted) >= 30, runs["out"][-3000:]
    jobs = runs["cluster"].jobs()
    rules = set()
    for _, slurm_id, log in submitted:
        comment, state = jobs[slurm_id]  # the controller knows every job Snakemake submitted
        rule = log.split("/rule_")[1].split("/")[0]
        assert comment.startswith(f"rule_{rule}"), (slurm_id, comment, log)
        assert state in ("COMPLETED", "CANCELLED"), (slurm_id, comment, state)
        # The executor's per-job SLURM log (kept for successful jobs by the slurm-cpu profile).
        assert Path(log).is_file() and runs["slurm"] / ".snakemake/slurm_logs" in Path(log).parents, log
        rules.add(rule)
    assert rules == {"build_base", "evaluate_base", "finetune", "evaluate_run", "evaluate_model", "importance",
                     "landscape"}
    # The cheap jobs are local rules: they ran where Snakemake runs, never through sbatch.
    for rule in ("make_data", "search_step", "search_result", "main_table", "result_plots", "loss_curves",
                 "sharpness_table", "claims_table"):
        assert re.search(rf"^local(rule|checkpoint) {rule}:$", runs["out"], re.M), rule
    # The job itself ran on the node through the jobstep executor, with this Snakemake.
    import snakemake

    log = next(Path(log) for _, _, log in submitted if "/rule_finetune/" in log)
    text = log.read_text()
    assert "--executor slurm-jobstep" in text and "localrule finetune:" in text
    assert f"Command: {Path(snakemake.__file__).parent}" in text


def test_tables_equal_those_of_a_local_run(runs):
    for name in ("main.csv", "seeds.csv"):
        local = pd.read_csv(runs["local"] / "results/tiny/tables" / name)
        slurm = pd.read_csv(runs["slurm"] / "results/tiny/tables" / name)
        pd.testing.assert_frame_equal(slurm, local, check_exact=False, rtol=0, atol=1e-9)
    assert len(local) > 0


def test_a_cancelled_finetune_job_is_resubmitted(runs):
    assert runs["cancelled"], "no finetune job was caught running"
    job, comment = runs["cancelled"]
    jobs = runs["cluster"].jobs()
    assert jobs[job] == (comment, "CANCELLED")
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in runs["out"]
    again = [j for j, (c, state) in jobs.items() if c == comment and int(j) > int(job)]
    assert again and jobs[again[-1]][1] == "COMPLETED", (comment, again)
    # Same Snakemake job, submitted again under a new SLURM job id.
    by_slurm_id = {slurm_id: snakemake_id for snakemake_id, slurm_id, _ in SUBMITTED.findall(runs["out"])}
    assert by_slurm_id[again[-1]] == by_slurm_id[job]
    # The killed attempt's SLURM log is kept, and the run's own log shows the finished retry.
    assert any((runs["slurm"] / ".snakemake/slurm_logs/rule_finetune").rglob(f"{job}.log"))
    run, task, seed = re.fullmatch(r"rule_finetune_wildcards_(.+)_([A-Za-z0-9-]+)_(\d+)", comment).groups()
    assert (runs["slurm"] / f"results/tiny/runs/{run}/{task}/seed{seed}/model/model.safetensors").is_file()


def test_gpu_profile_and_site_layer_reach_sbatch(runs, tmp_path):
    """workflow/profiles/slurm under a site layer: the local rules run; a GPU rule's sbatch asks for what the profile says.

    This node has no GPU, so SLURM refuses the GPU job: its sbatch call is in Snakemake's error.
    """
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "site.yaml").write_text("default-resources:\n  slurm_partition: debug\nslurm-status-command: squeue\n"
                                       "config:\n  cluster: {gpus_per_node: 4, gpu_model: a100, cpus_per_gpu: 3}\n")
    env = {**runs["cluster"].env,
           "PATH": os.pathsep.join([str(runs["cluster"].bin), str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "site.yaml", "--workflow-profile", "workflow/profiles/slurm",
                           "--configfile", "tiny.yaml", "--slurm-init-seconds-before-status-checks", "2", "--retries", "0",
                           "results/tiny/base_model"], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert re.search(r"^localrule make_data:$", out, re.M), out[-3000:]  # a local rule: it ran here
    assert (workdir / "results/tiny/data/bio_train.jsonl").is_file()
    call = out.split("sbatch call:", 1)[1].split("\n", 2)[1]
    for flag in ("-p debug", "-t 60", "--mem 16000", "--cpus-per-gpu=3", "--gpus=a100:1", "--comment rule_build_base"):
        assert flag in call, (flag, call)
    assert "Invalid generic resource" in out


def test_a_sharded_finetune_job_through_srun_trains_what_the_local_run_trains(slurm_cluster, tmp_path):
    """The launch path of a multi-node job on the one node here: a finetune job whose profile asks for
    `nodes: 1`, `tasks_per_node: 2` and `mpi: srun` starts two srun tasks, which shard the model (FSDP2,
    gloo); its weights equal those of the same job run locally under torchrun with two processes."""
    import json

    import torch
    import yaml
    from safetensors.torch import load_file

    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    config |= {"runs": {"full": {}}, "search": {"enabled": False}, "landscape": {"runs": []}}
    target = "results/tiny/runs/full/bio/seed0/model"
    venv_bin = str(Path(sys.executable).parent)
    trained = {}
    for where in ("local", "slurm"):
        workdir = copy_workflow(tmp_path / where)
        (workdir / "one.yaml").write_text(yaml.safe_dump(config))
        if where == "local":
            env = {**os.environ, "PATH": os.pathsep.join([venv_bin, os.environ["PATH"]])}
            args = ["--cores", "2", "--set-resources", "finetune:processes=2"]
        else:
            env = {**slurm_cluster.env, "PATH": os.pathsep.join([str(slurm_cluster.bin), venv_bin, os.environ["PATH"]])}
            args = ["--workflow-profile", "workflow/profiles/slurm-cpu", "--set-resources", "finetune:mpi=srun",
                    "finetune:nodes=1", "finetune:tasks_per_node=2", "finetune:mem_mb=2000", "finetune:runtime=30"]
        done = subprocess.run([sys.executable, "-m", "snakemake", *args, "--configfile", "one.yaml", "--", target],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + slurm_cluster.logs()
        record = json.loads((workdir / target / "cofi_run.json").read_text())
        assert record["processes"] == 2 and record["sharded"], record
        trained[where] = load_file(workdir / target / "model.safetensors")
        if where == "slurm":
            assert "srun --nodes=1 --ntasks-per-node=2 python -m cofi finetune" in done.stdout + done.stderr
            assert SUBMITTED.search(done.stdout + done.stderr)  # through sbatch
    for name, tensor in trained["local"].items():
        torch.testing.assert_close(trained["slurm"][name], tensor, atol=1e-6, rtol=1e-5, msg=name)
