# cofi: fine-tune an aligned LLM for a speciality without forgetting its versatility.
# Config, validation, includes and targets only; the logic lives in the cofi package.
from snakemake.utils import min_version

from cofi.config import check_config
from cofi.errors import InputError

min_version("9.0")


# A --configfile replaces the embedded default instead of being merged into it: merging would
# keep the default's tasks and methods in every user experiment.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


try:
    check_config(config)  # fills defaults; bad keys, data files or model path stop here
except InputError as error:
    raise SystemExit(f"cofi: {error}")


wildcard_constraints:
    method=r"[A-Za-z0-9_-]+",
    task=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    seed=r"\d+",


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"


rule all:
    input:
        MAIN_TABLE,
    default_target: True
