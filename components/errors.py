"""Errors the CLI turns into one line and an exit code. Messages name files, lines and keys, never values."""

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input or usage (exit 2): the message names the file, line and key, never a value."""
