"""The one error family for bad user input: the command line prints it without a traceback."""


class InputError(ValueError):
    """Bad input; the message names the file:line or config key and what was expected."""
