import sys

from cofi.cli import main

sys.exit(main())
