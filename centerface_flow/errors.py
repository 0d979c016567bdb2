"""The one exception type for bad user input: the CLI prints its message (no traceback) and exits non-zero."""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed line, a wrong config key.

    The message must name what is wrong and where (file and line, or config key).
    """
