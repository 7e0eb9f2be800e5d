import sys

from cofi.jobserver import delegate

# Under `python -m cofi.jobserver COMMAND`, the job runs in the server's warm process; else here.
status = delegate(sys.argv[1:])
if status is None:
    from cofi.cli import main

    status = main()
sys.exit(status)
