"""The one exception type for bad user input.

The CLI prints a :class:`CnnlabError` as a single line naming what was wrong (a path, an
argument, a value) instead of a traceback; library users can catch it like any ``ValueError``.
"""


class CnnlabError(ValueError):
    """Bad input from the user: a missing file, a wrong argument, an unknown name."""


class Diverged(CnnlabError):
    """The training loss became NaN, infinite or absurdly large (too large a learning rate, most often)."""
