# cofi: fine-tune an aligned LLM for a speciality without forgetting its versatility.
# Config, validation, includes and targets only; the logic lives in the cofi package.
import copy

from snakemake.utils import min_version

from cofi.models.cluster import check_described
from cofi.config.checks import checked_experiment, load_config
from cofi.errors import InputError
from cofi.config.candidates import SCORES_STEM
from cofi.config.names import RUN_NAME

min_version("9.0")


report: "workflow/report/workflow.rst"


# A --configfile replaces the embedded default instead of being merged into it: merging would
# keep the default's tasks and runs in every user experiment.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


CALL_CONFIG = copy.deepcopy(config)  # as given, before the defaults: what the completion check's dry run reads
try:
    for path in workflow.configfiles:
        load_config(path)  # what Snakemake's own loader lets pass: duplicate keys
    # Fills the defaults; bad keys, data files or model path stop here. Every rule reads EXPERIMENT.
    EXPERIMENT = checked_experiment(config)
except InputError as error:
    raise SystemExit(f"cofi: {error}")


onstart:
    # The executor is known only once the workflow starts (not in a dry run): sent to SLURM, the site layer
    # must say what the cluster's nodes have, or no job would ask for a GPU.
    try:
        check_described(EXPERIMENT.cluster, workflow.executor_plugin.name)
    except InputError as error:
        raise SystemExit(f"cofi: {error}")


wildcard_constraints:
    run=RUN_NAME,
    split=SCORES_STEM,
    depth=r"\d{1,2}",
    task=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    seed=r"\d+",
    source=r"[A-Za-z0-9][A-Za-z0-9_-]*",


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/importance.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"
include: "rules/search.smk"
include: "rules/tables.smk"
include: "rules/realign.smk"
include: "rules/analysis.smk"
include: "rules/completion.smk"


rule all:
    input:
        TABLE_OUTPUTS,
        LOSS_CURVES,
        rules.realign_table.output if EXP.realign.runs else [],
        # Requested here too so every task's search starts at once (not one after another).
        rules.search_all.input,
    default_target: True


rule tables:
    """Target: every table and figure, from the score files already there (`make tables` forces a rebuild)."""
    input:
        TABLE_OUTPUTS,
