"""The one exception type for bad user input (the CLI prints its message, no traceback, and exits non-zero) and a
parser that raises it."""
from __future__ import annotations

__all__ = ["UserError", "parse_int"]


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed line, a wrong config key.

    The message must name what is wrong and where (file and line, or config key).
    """


def parse_int(text: str, where: str, what: str, minimum: int | None = None) -> int:
    """``int(text)``, or a :class:`UserError` saying ``where: expected <what>, got <text>`` (also below ``minimum``).

    ``where`` names the place the text came from (``file:line``, ``VARIABLE=value``, a config key).
    """
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{where}: expected {what}, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise UserError(f"{where}: expected {what} >= {minimum}, got {value}")
    return value
