"""Whether a workflow call finished what it was asked for: a fresh dry run of the same targets, config and
rerun triggers finds no job left.

Snakemake 9.27 can end a call early, with exit status 0 and "100% done", after re-running chained
checkpoints (docs/known-issues.md). The workflow's ``onsuccess`` hook (rules/completion.smk) runs this
check and turns such an ending into a failure that says what is left. No Snakemake import here: the hook
builds the dry-run command; this module runs it and reads its "Job stats" table.
"""

from __future__ import annotations

import subprocess

from cofi.errors import InputError

# The exit status of a call that ended with its targets unfinished: EX_TEMPFAIL (sysexits.h), "try again": the
# same command finishes them (make run calls Snakemake a second time on it alone).
UNFINISHED_STATUS = 75
NOTHING_LEFT = "Nothing to be done"  # Snakemake's line when every requested file is present and up to date
JOB_STATS = "Job stats:"


class CheckError(InputError):
    """The dry run itself failed or said something this module cannot read."""


def jobs_left(dry_run_output: str) -> dict[str, int]:
    """{rule: jobs} a dry run's output lists as still to run; empty when it has nothing to do.

    A dry run stops at checkpoints whose outputs are missing and prints one table per DAG it builds; the
    first table is what is certainly left."""
    if NOTHING_LEFT in dry_run_output:
        return {}
    lines = dry_run_output.splitlines()
    try:
        start = lines.index(JOB_STATS)
    except ValueError:
        raise CheckError("the dry run printed neither its job stats nor " + repr(NOTHING_LEFT)) from None
    left = {}
    for line in lines[start + 3:]:  # past the header "job count" and its rule
        name, _, count = line.rpartition(" ")
        if name.strip() == "total" or not count.isdigit():
            break
        left[name.strip()] = int(count)
    return left


def left_after(command: list[str], cwd: str | None = None, timeout: float = 600) -> dict[str, int]:
    """Run ``command`` (a Snakemake dry run) and return what it lists as left (:func:`jobs_left`)."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise CheckError(f"the dry run ended with exit status {done.returncode}:\n{tail}")
    return jobs_left(output)


def unfinished_message(left: dict[str, int]) -> str:
    jobs = ", ".join(f"{rule} ({count})" for rule, count in left.items())
    return (f"cofi: this call ended with {sum(left.values())} job(s) of its targets still to do: {jobs}. "
            "The result is partial: run snakemake again (the same command) to finish it.")
