"""Reading a dry run for the completion check (cofi/jobs/completeness.py); the check on real calls is in test_workflow."""

import sys

import pytest

from cofi.jobs.completeness import CheckError, jobs_left, left_after, unfinished_message

# What Snakemake 9.27 prints for a dry run that stops at a pending checkpoint: one table per DAG it builds.
PENDING = """Building DAG of jobs...
Job stats:
job                count
---------------  -------
evaluate_run           2
main_table             1
all                    1
total                  4

DAG of jobs will be updated after completion.
Job stats:
job                count
---------------  -------
evaluate_run           2
main_table             1
search_step            1
all                    1
total                  5
"""


def test_the_first_job_table_is_what_is_left():
    assert jobs_left(PENDING) == {"evaluate_run": 2, "main_table": 1, "all": 1}


def test_nothing_to_be_done_leaves_nothing():
    assert jobs_left("Building DAG of jobs...\nNothing to be done (all requested files are present and up to date).\n") == {}


def test_output_it_cannot_read_is_an_error_not_a_pass():
    with pytest.raises(CheckError, match="neither its job stats"):
        jobs_left("Building DAG of jobs...\nsomething else\n")


def test_a_failing_dry_run_is_an_error_with_its_last_lines():
    with pytest.raises(CheckError, match=r"exit status 3:\nno such target"):
        left_after([sys.executable, "-c", "import sys; print('no such target'); sys.exit(3)"])


def test_the_message_names_every_rule_and_says_to_run_again():
    message = unfinished_message({"evaluate_run": 2, "all": 1})
    assert "3 job(s)" in message and "evaluate_run (2), all (1)" in message and "run snakemake again" in message
