"""Pinned CPU kernels: the same arithmetic on every x86-64 machine with AVX2, so that a job's result does
not follow the machine.

torch's CPU kernels (ATen), MKL's matrix products and oneDNN each pick their code path by the CPU's
instruction set, and each path rounds differently. Training amplifies that: the embedded base model's
600 steps turned it into base models 37-55 % apart (relative norm of the weight difference), and
fine-tuning at a high learning rate or with SAM moved the default's scores by up to 6.7 points
(docs/reproducibility.md). The variables below put all three libraries on their AVX2 paths (every Intel
CPU since 2013, every AMD Zen), MKL in its conditional numerical reproducibility mode. They must be set before the libraries start: each
job that computes (:attr:`cofi.jobs.interface.Job.computes`) starts itself again with them where they are not set (:func:`pin`, from
``python -m cofi``), and the job server's warm process starts with them (:mod:`cofi.devtools.jobserver`).
"""

from __future__ import annotations

import os
import sys

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels: the AVX2 build of each, even on AVX-512 machines
    # MKL: its AVX2 branch. Not STRICT: it cost a training job 7 % and changed no bit here, even across thread counts
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # and no narrower: a setting of the user's would change the branch
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, where torch calls it
}
EXPECTED_CAPABILITY = "AVX2"  # what torch reports when the pin took


def pinned(environ=os.environ) -> bool:
    return all(environ.get(name) == value for name, value in PINNED.items())


def pin(argv: list[str]) -> None:
    """Make this process ``python -m cofi ARGV`` under the pinned kernels: return if it is already, else
    replace it (``os.execve``: the same process id, streams and working directory) by a fresh one that is."""
    if pinned():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "cofi", *argv], {**os.environ, **PINNED})


def in_use() -> str:
    """The instruction set torch's kernels run on, and a warning where the pin could not take (no AVX2 on this
    CPU, or not x86): the result then differs from other machines'."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability == EXPECTED_CAPABILITY:
        return f"pinned CPU kernels: torch {capability}, MKL_CBWR={os.environ.get('MKL_CBWR')}"
    return (f"warning: the CPU kernels could not be pinned to {EXPECTED_CAPABILITY} (torch reports {capability}): "
            "this job's result will differ from other machines'")
