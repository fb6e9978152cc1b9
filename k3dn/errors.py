"""The one base of the failures a person can act on (a missing file, weights of another model, a config typo).

``k3dn.cli`` prints such a failure as one line, ``error: <file or key>: <what is wrong and what to do>``, and
exits with the class's ``exit_code``; anything else is a bug and keeps its traceback. Classes that already
subclass a builtin (``ValueError``, ``RuntimeError``) keep it as a second base, so callers that catch the
builtin still do. A message may have several lines (``CheckpointMismatch`` lists every tensor): the command
line shows :meth:`UserError.one_line`, ``--verbose`` adds the whole message.

No imports beyond the standard library: every module may raise these, including the torch-free ones.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix; ``str()`` names the file or config key first, then the problem and the fix.

    ``where`` (optional): the file or key, prefixed to the message (``"<where>: <message>"``).
    """

    #: the exit status of ``k3dn`` for this failure (see ``k3dn.cli``)
    exit_code = 1

    def __init__(self, *args, where=None):
        super().__init__(*args)
        self.where = None if where is None else str(where)

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.where}: {msg}" if self.where else msg

    def one_line(self) -> str:
        """The message on one line (a multi-line message is joined with ``"; "``)."""
        return join_lines(str(self))


class InputError(UserError, ValueError):
    """A file or value given by the user that cannot be used (a ``ValueError`` to callers that catch that)."""


def join_lines(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def describe(exc: BaseException) -> str:
    """One line for an expected failure: its ``one_line()`` where it has one; an ``OSError`` as
    ``<file>: <reason>``; else its message with the lines joined."""
    one = getattr(exc, "one_line", None)
    if callable(one):
        text = one()
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = join_lines(str(exc))
    return text or type(exc).__name__
