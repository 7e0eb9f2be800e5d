"""A warm process for cofi's jobs: the heavy libraries imported once, each job forked from it.

A fresh ``python -m cofi`` spends about 3.5 s importing torch, transformers, datasets and peft before
its work starts; a job of the embedded default computes for a few seconds, so most of a workflow's
time went to start-up (docs/benchmarks.md). ``python -m cofi.devtools.jobserver COMMAND...`` runs COMMAND
(e.g. ``snakemake --cores 2``) beside a server that has imported them once. Every ``python -m cofi``
started under COMMAND sends its arguments, working directory, environment and standard streams to the
server, which forks a child to run it and sends back its exit status: the child is the job (the same
code on the same arguments, writing the same files and log), with the imports already done.

The server and COMMAND start with cofi's pinned CPU kernels (:mod:`cofi.models.kernels`), as every computing
job must (the CPU's own where ``COFI_CPU_KERNELS=native`` asks, as a bf16 config's jobs do). A job runs in its own process instead, as without a server, wherever the server could differ
from a fresh process: the server is unreachable, another Python or another copy of cofi runs the job (a
conda environment), or the job's environment differs from the server's in anything but the working
and temporary directories and the thread counts, which every computing cofi command sets itself
(e.g. the processes of torchrun or srun, or a SLURM job). A job whose client is killed is killed; a
job outlives neither its server nor COMMAND.

Linux only (file descriptors pass over a Unix socket; children die with the server through
``PR_SET_PDEATHSIG``); elsewhere every job runs in its own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

SOCKET_VARIABLE = "COFI_JOB_SERVER"  # the server's socket, in the environment of COMMAND and its jobs
# What may differ between a job's environment and the server's: the directories Snakemake sets per job, the
# thread counts it sets from `threads:` (cofi sets torch's itself) and the shell's own bookkeeping.
PER_JOB = {"PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "TMP", "TEMP", "TEMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
           "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"}
# The server's own settings, so that it stays one thread through its imports (torch's OpenMP pool and pyarrow's
# jemalloc purger would each start one): a fork copies only the calling thread. A job sets its own thread count.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
HEADER = struct.Struct("!I")  # the length of the JSON request that follows
# The line a client writes to its job's log: Snakemake's benchmark measures the client's process, not the
# job's, so cofi.devtools.bench reads the job's peak memory from here.
RESULT_LINE = "cofi: job server process {pid}: exit status {status}, peak RSS {maxrss_mb:.0f} MB, CPU {cpu_s:.1f}s"
PEAK_RSS_PATTERN = r"^cofi: job server process \d+: exit status -?\d+, peak RSS (\d+) MB"


def _job_environment(environ) -> dict[str, str]:
    """The environment a cofi job computes in: cofi's offline defaults under what is set."""
    from cofi import OFFLINE

    return {**OFFLINE, **environ}


def _differences(job: dict[str, str], server: dict[str, str]) -> list[str]:
    return sorted(name for name in set(job) | set(server) if name not in PER_JOB and job.get(name) != server.get(name))


def _identity() -> dict:
    """What must be the same for a job to run in the server: the interpreter and the cofi package."""
    import cofi

    return {"python": os.path.realpath(sys.executable), "cofi": os.path.dirname(os.path.realpath(cofi.__file__))}


def wants_gpu(argv: list[str], environ) -> bool:
    """Whether a job may compute on a GPU: its device (in its spec or flags) ``cuda...``, or ``auto`` (the default)
    on a machine with an NVIDIA device that CUDA_VISIBLE_DEVICES does not hide. Such a job runs as a plain process:
    CUDA is initialised in the job, never in a process that forks."""
    from cofi.jobs.interface import device_of

    device = device_of(argv)
    if device.startswith("cuda"):
        return True
    if device != "auto" or environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def fork_hazard() -> str:
    """Why forking this process now would be unsafe, or "": a fork copies one thread only (a lock another thread
    held stays locked in the child), and a child cannot use the CUDA context of a parent that initialised it."""
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads > 1:
        return f"the server runs {threads} threads (a fork would copy one)"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "the server has initialised CUDA"
    return ""


# --- the client: python -m cofi ... --------------------------------------------------------------------


def delegate(argv: list[str]) -> int | None:
    """Run ``python -m cofi ARGV`` in the job server named by ``COFI_JOB_SERVER``: its exit code, or None
    where there is no server to run it (the caller then runs it itself)."""
    path = os.environ.get(SOCKET_VARIABLE)
    if not path or not hasattr(socket, "send_fds") or wants_gpu(argv, os.environ):
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": _job_environment(os.environ), **_identity()})
        socket.send_fds(connection, [HEADER.pack(len(request.encode()))], [0, 1, 2])
        connection.sendall(request.encode())
        reader = connection.makefile("r")
        answer = json.loads(reader.readline() or "{}")
    except (OSError, ValueError) as error:
        print(f"cofi: job server {path} not reachable ({error}); running in this process", file=sys.stderr)
        connection.close()
        return None
    if "refused" in answer:
        print(f"cofi: running in this process, not the job server: {answer['refused']}", file=sys.stderr)
        connection.close()
        return None

    def forward(signum, _frame):  # Snakemake stops a job by signalling its shell's process group
        try:
            connection.sendall(f"{signum}\n".encode())
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    line = reader.readline()  # the wait goes on after a forwarded signal (PEP 475)
    if not line:
        print(f"cofi: the job server ended during job {answer.get('pid')}", file=sys.stderr)
        return 1
    result = json.loads(line)
    print(RESULT_LINE.format(pid=answer["pid"], **result), file=sys.stderr)
    status = result["status"]
    return status if status >= 0 else 128 - status


# --- the server ----------------------------------------------------------------------------------------


def _preload() -> None:
    """What every computing job imports (the same modules, in the same way, as a fresh job would)."""
    import datasets  # noqa: F401
    import matplotlib
    import pandas  # noqa: F401
    import peft  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig,  # noqa: F401
                              LlamaForCausalLM, PreTrainedTokenizerFast, get_cosine_schedule_with_warmup)

    matplotlib.use("Agg")  # what cofi.io.pyplot does before pyplot's import
    import matplotlib.pyplot  # noqa: F401

    from cofi.evaluation.instructions import registry

    try:  # the IFEval checkers (lm-evaluation-harness, an extra): an instruction suite's evaluation and start-up check
        registry()
    except ImportError:
        pass


class Server:
    """Accepts jobs on ``path`` and runs each in a forked child, until its standard input closes."""

    def __init__(self, path: str):
        import selectors

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs through their clients
        self.environment = _job_environment({k: v for k, v in os.environ.items() if k not in SINGLE_THREADED})
        os.environ.update(self.environment)  # the offline defaults, before any Hugging Face import
        self.identity = _identity()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)  # clients may connect now; they wait while the imports run
        self.listener.listen(64)
        before = dict(os.environ)
        _preload()
        # What the imports set in the environment (torch, transformers, scikit-learn: KMP_INIT_AT_FORK, ...): a job
        # whose Snakemake process imported them too (a Snakefile that reads a model) carries the same values.
        self.imported = {k: v for k, v in os.environ.items() if before.get(k) != v}
        self.jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection
        self.selector = selectors.DefaultSelector()
        self.wakeup, wakeup_write = socket.socketpair()
        for end in (self.wakeup, wakeup_write):
            end.setblocking(False)
        signal.set_wakeup_fd(wakeup_write.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # reaped in the loop
        self._wakeup_write = wakeup_write
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakeup, selectors.EVENT_READ, "reap")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "stop")

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "reap":
                    self._drain(self.wakeup)
                elif key.data == "stop":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return self._stop()
                else:
                    self._signal(key.fileobj, key.data)
            self._reap()

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(10)  # a client that connects and says nothing must not stall the others
        fds: list[int] = []
        try:
            header, fds, _, _ = socket.recv_fds(connection, HEADER.size, 3)
            (length,) = HEADER.unpack(header)
            body = b""
            while len(body) < length:
                chunk = connection.recv(length - len(body))
                if not chunk:
                    raise OSError("the client left during its request")
                body += chunk
            request = json.loads(body)
            why = self._refusal(request, fds)
            if why:
                connection.sendall((json.dumps({"refused": why}) + "\n").encode())
        except (OSError, ValueError, TypeError, AttributeError, struct.error):  # a client that left, or nonsense
            why = "unreadable request"
        if why:
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        for stream in (sys.stdout, sys.stderr):  # nothing of the server's may reach the job's log
            stream.flush()
        pid = os.fork()
        if pid == 0:
            self._child(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        self.jobs[pid] = connection
        try:
            connection.sendall((json.dumps({"pid": pid}) + "\n").encode())
        except OSError:  # the client is gone already: so is the job (the connection's end reaps it)
            _kill(pid, signal.SIGKILL)
        connection.setblocking(False)
        import selectors

        self.selector.register(connection, selectors.EVENT_READ, pid)

    def _refusal(self, request: dict, fds: list[int]) -> str:
        if len(fds) != 3:
            return "standard streams not received"
        if hazard := fork_hazard():
            return hazard
        differs = [key for key in ("python", "cofi") if request.get(key) != self.identity[key]]
        if differs:
            return f"another {' and '.join(differs)} ({', '.join(request.get(k, '?') for k in differs)})"
        job = request.get("env", {})
        variables = [name for name in _differences(job, self.environment)
                     if name not in self.imported or job.get(name) != self.imported[name]]
        if variables:
            return f"its environment differs from the server's in {', '.join(variables[:5])}"
        return ""

    def _child(self, request: dict, fds: list[int]) -> None:
        """Become the job: the client's streams, directory and environment, then cofi's command line."""
        code = 1
        try:
            _die_with_parent()
            os.setsid()  # its own process group: a signal for the job reaches what it starts too
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.selector.close()
            for sock in (self.listener, self.wakeup, self._wakeup_write, *self.jobs.values()):
                if sock is not None:
                    sock.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            environment = {k: v for k, v in request["env"].items() if k != SOCKET_VARIABLE}
            os.environ.clear()
            os.environ.update(environment)
            _apply_thread_count(environment)
            code = _run_cofi(request["argv"], request["cwd"])
        finally:
            os._exit(code)

    def _signal(self, connection: socket.socket, pid: int) -> None:
        """A client's forwarded signal, or its end (killed, say): the job gets the signal, or is killed."""
        try:
            data = connection.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        signals = [int(s) for s in data.split()] if data else [signal.SIGKILL]
        for signum in signals:
            _kill(pid, signum)
        if not data:
            self.selector.unregister(connection)
            connection.close()
            self.jobs[pid] = None

    def _reap(self) -> None:
        while self.jobs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.jobs.pop(pid, None)
            if connection is None:
                continue
            result = {"status": os.waitstatus_to_exitcode(status), "maxrss_mb": usage.ru_maxrss / 1024,
                      "cpu_s": usage.ru_utime + usage.ru_stime}
            self.selector.unregister(connection)
            try:
                connection.setblocking(True)
                connection.sendall((json.dumps(result) + "\n").encode())
            except OSError:
                pass
            connection.close()

    @staticmethod
    def _drain(wakeup: socket.socket) -> None:
        try:
            while wakeup.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _stop(self) -> None:
        for pid in list(self.jobs):
            _kill(pid, signal.SIGTERM)
        for pid in list(self.jobs):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.listener.close()


def _apply_thread_count(environment: dict) -> None:
    """The job's OMP_NUM_THREADS, where set, as torch's thread count: the OpenMP runtime read the variable once, when
    the server imported torch, so a job's own value reaches it only through torch (every computing cofi command then
    sets its own count from --threads, as in a fresh process)."""
    value = environment.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        import torch

        torch.set_num_threads(int(value))


def _kill(pid: int, signum: int) -> None:
    """Signal a job and what it started (its process group; the job itself before it has made its group)."""
    for send in (os.killpg, os.kill):
        try:
            return send(pid, signum)
        except ProcessLookupError:
            continue


def _die_with_parent() -> None:
    """A job does not outlive its server (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the server ended before the request took effect
        os._exit(1)


def _run_cofi(argv: list[str], cwd: str) -> int:
    """``python -m cofi ARGV`` inside this process; its exit code."""
    import logging
    import random
    import runpy
    import tempfile
    import traceback

    tempfile.tempdir = None  # found again from this job's TMPDIR
    random.seed()  # a fresh process's draw, not the server's
    sys.path[0] = cwd  # what `python -m` puts first
    import cofi

    sys.argv = [os.path.join(os.path.dirname(cofi.__file__), "__main__.py"), *argv]
    code = 0
    try:
        runpy.run_module("cofi", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - what the interpreter would print before exiting with 1
        traceback.print_exc()
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


# --- the wrapper: python -m cofi.devtools.jobserver COMMAND... ------------------------------------------------------


@contextlib.contextmanager
def serving(environment: dict[str, str] | None = None):
    """A job server for the duration of the block: yields the environment (``environment``, default this
    process's, with ``COFI_JOB_SERVER`` set) under which ``python -m cofi`` jobs run in it."""
    import shutil
    import subprocess
    import tempfile
    import time

    from cofi.models import kernels

    directory = tempfile.mkdtemp(prefix="cofi-jobserver-")  # mode 0700: only this user's jobs connect
    path = os.path.join(directory, "socket")
    # Pinned kernels from the start (cofi.models.kernels; native ones where the environment asks): the warm process
    # computes as its jobs must, and the jobs, whose environment is this one, run in it rather than starting again.
    environment = {**kernels.environment(os.environ if environment is None else environment), SOCKET_VARIABLE: path}
    server = subprocess.Popen([sys.executable, "-m", "cofi.devtools.jobserver", "--serve", path], stdin=subprocess.PIPE,
                              env={**environment, **SINGLE_THREADED})
    try:
        while not os.path.exists(path):  # bound before its imports: jobs may connect from then on
            if server.poll() is not None:
                raise RuntimeError(f"the job server exited with status {server.returncode} before it started")
            time.sleep(0.02)
        yield environment
    finally:
        server.stdin.close()  # the server stops its jobs, if any are left, and exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(directory, ignore_errors=True)


def run_with_server(command: list[str]) -> int:
    """Run ``command`` with a job server beside it; the server ends with it. Returns its exit status."""
    import subprocess

    with serving() as environment:
        process = subprocess.Popen(command, env=environment)
        # Ctrl-C reaches COMMAND from the terminal and is COMMAND's to handle; a SIGTERM or SIGHUP sent to
        # this process is passed on.
        handlers = {signal.SIGINT: signal.SIG_IGN} | {
            signum: (lambda sig, _frame: process.send_signal(sig)) for signum in (signal.SIGTERM, signal.SIGHUP)}
        previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
        try:
            return process.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"] and len(argv) == 2:
        Server(argv[1]).serve()
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m cofi.devtools.jobserver COMMAND [ARG ...]\n\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    return run_with_server(argv)


if __name__ == "__main__":
    sys.exit(main())
