"""The workflow's jobs, each a function of one job spec (a dataclass) that reads and writes files.

``cofi/cli.py`` only turns a command line into a spec and calls the function; the rules build the
command lines. A job never reads the config: everything it needs is in its spec.
"""
