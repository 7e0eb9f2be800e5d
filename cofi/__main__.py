import sys

from cofi.jobs import JOBS, job_class, online
from cofi.models import kernels
from cofi.devtools.jobserver import delegate

if sys.argv[1:2] and sys.argv[1] in JOBS and job_class(sys.argv[1]).computes:
    kernels.pin(sys.argv[1:])  # before torch starts; no-op where the environment pins already (a job server's)
# Under `python -m cofi.devtools.jobserver COMMAND`, the job runs in the server's warm process; else here.
status = None if online(sys.argv[1:]) else delegate(sys.argv[1:])
if status is None:
    from cofi.cli import main

    status = main()
sys.exit(status)
