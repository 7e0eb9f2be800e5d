# After a call that ended well, a fresh dry run of its targets must find nothing left: Snakemake 9.27 can end a
# call early, with exit status 0 and "100% done", after re-running chained checkpoints (docs/known-issues.md).
# The dry run reads this call's own config (as given, before the schema's defaults), targets, rerun triggers
# and software deployment; not its --forcerun (a forced job that ran is not left).
import json
import sys
import tempfile

from cofi.jobs.completeness import UNFINISHED_STATUS, CheckError, left_after, unfinished_message


def dry_run_command(config_file):
    settings = workflow.dag_settings
    triggers = sorted(trigger.item_to_choice() for trigger in settings.rerun_triggers)  # as the command line spells them
    deployment = sorted(method.item_to_choice() for method in workflow.deployment_settings.deployment_method)
    # The targets first: the options after them take several values each.
    return [sys.executable, "-m", "snakemake", *sorted(settings.targets), "--snakefile", workflow.main_snakefile,
            "--configfile", config_file, "--dry-run", "--nolock", "--rerun-incomplete", "--cores", "1",
            "--quiet", "rules", "--rerun-triggers", *triggers,
            *(["--software-deployment-method", *deployment] if deployment else [])]


def partial_on_purpose():
    """The call asked for part of its targets' work (--until, --omit-from, --allowed-rules, --batch), or is one
    job's own call (--target-jobs): there is nothing to check against."""
    settings = workflow.dag_settings
    return bool(settings.until or settings.omit_from or settings.allowed_rules or settings.batch
                or settings.target_jobs)


onsuccess:
    if partial_on_purpose():
        print("cofi: not checking that every target is done: this call asked for part of the work", file=sys.stderr)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="cofi-call-config-") as handle:
            json.dump(CALL_CONFIG, handle)
            handle.flush()
            try:
                left = left_after(dry_run_command(handle.name))
            except CheckError as error:
                raise SystemExit(f"cofi: could not check that every target of this call is done: {error}")
        if left:
            print(unfinished_message(left), file=sys.stderr)
            raise SystemExit(UNFINISHED_STATUS)
