"""The workflow's jobs: each a frozen dataclass (:class:`cofi.jobs.interface.Job`) whose ``execute`` reads and
writes files, and the only code that writes result files.

Its fields are its whole interface (:mod:`cofi.jobs.interface`): ``python -m cofi <command>`` is generated
from them, and a rule passes one JSON spec of them. A job never reads the config: everything it needs
is in its spec.
"""

from __future__ import annotations

import importlib

# Every workflow command and its job class ("module:Class"): imported when asked for, so that the command
# line's start-up imports neither torch nor pandas.
JOBS = {
    "make-data": "cofi.jobs.base_model:MakeDataJob",
    "import-gguf": "cofi.jobs.base_model:ImportGgufJob",
    "fetch-model": "cofi.jobs.base_model:FetchModelJob",
    "build-base": "cofi.jobs.base_model:BaseModelJob",
    "finetune": "cofi.jobs.finetune:FinetuneJob",
    "evaluate": "cofi.jobs.evaluate:EvaluateJob",
    "importance": "cofi.jobs.analysis:ImportanceJob",
    "landscape": "cofi.jobs.analysis:LandscapeJob",
    "search-step": "cofi.jobs.search:SearchStepJob",
    "search-report": "cofi.jobs.search:SearchReportJob",
    "matrix-snr": "cofi.jobs.search:MatrixSnrJob",
    "search-snr": "cofi.jobs.search:SearchSnrJob",
    "realign-data": "cofi.jobs.realign:RealignDataJob",
    "realign-table": "cofi.jobs.tables:RealignTableJob",
    "table": "cofi.jobs.tables:TableJob",
    "claims": "cofi.jobs.tables:ClaimsJob",
    "plots": "cofi.jobs.tables:PlotsJob",
    "loss-curves": "cofi.jobs.tables:LossCurvesJob",
    "sharpness": "cofi.jobs.tables:SharpnessJob",
}

# The commands that may reach the Hugging Face hub: every other job runs offline (cofi.OFFLINE), and none of these
# runs in the job server (whose imports read the offline switches once).
ONLINE = frozenset({"fetch-model"})


def online(argv: list[str]) -> bool:
    """``python -m cofi ARGV`` may go online."""
    return bool(argv[:1]) and argv[0] in ONLINE


def job_class(command: str):
    module, _, name = JOBS[command].partition(":")
    return getattr(importlib.import_module(module), name)
