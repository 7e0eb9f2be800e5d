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
A job whose environment says ``COFI_CPU_KERNELS=native`` (a bf16 config's: :attr:`ComputeSettings.cpu_kernels`)
starts itself again without them instead.
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
# Set to "native" (the workflow does so for compute.precision bf16): the job computes on the CPU's own kernels. The
# pinned AVX2 paths have no bf16 instructions and emulate them: twelve SmolLM2 training steps in bf16 did not finish
# in 300 s there (float32: 2.2 s a step), while AVX-512 BF16 made a step 1.7x faster. bf16 follows the machine anyway.
KERNELS_VARIABLE = "COFI_CPU_KERNELS"


def pinned(environ=os.environ) -> bool:
    return all(environ.get(name) == value for name, value in PINNED.items())


def wants_native(environ=os.environ) -> bool:
    return environ.get(KERNELS_VARIABLE) == "native"


def environment(environ=os.environ) -> dict[str, str]:
    """``environ`` as a computing job needs it: the pin added, or, where it asks for native kernels, taken away."""
    if wants_native(environ):
        return {name: value for name, value in environ.items() if name not in PINNED}
    return {**environ, **PINNED}


def pin(argv: list[str]) -> None:
    """Make this process ``python -m cofi ARGV`` compute under the kernels its environment asks for (pinned, unless
    :data:`KERNELS_VARIABLE` says native): return if it already does, else replace it (``os.execve``: the same
    process id, streams and working directory) by a fresh one that does."""
    wanted = environment()
    if wanted == dict(os.environ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "cofi", *argv], wanted)


def in_use() -> str:
    """The instruction set torch's kernels run on, and a warning where the pin could not take (no AVX2 on this
    CPU, or not x86): the result then differs from other machines'."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if wants_native():
        return f"native CPU kernels ({KERNELS_VARIABLE}=native): torch {capability}; results follow this CPU"
    if capability == EXPECTED_CAPABILITY:
        return f"pinned CPU kernels: torch {capability}, MKL_CBWR={os.environ.get('MKL_CBWR')}"
    return (f"warning: the CPU kernels could not be pinned to {EXPECTED_CAPABILITY} (torch reports {capability}): "
            "this job's result will differ from other machines'")
