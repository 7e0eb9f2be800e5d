from cofi.devtools.cli import run

raise SystemExit(run())
