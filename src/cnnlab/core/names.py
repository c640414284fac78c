"""Things chosen by name (models, datasets, ...): one registry type, and "did you mean" on a typo.

Every name a user types on the command line is looked up here, so a misspelt name fails the same
way everywhere: one :class:`CnnlabError` line naming what was asked, the closest known names, and
where to see them all. Torch-free: the CLI's parser may import it.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, TypeVar

from cnnlab.core.errors import CnnlabError

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.6,
                 show: Callable[[str], str] = str) -> str:
    """``" Did you mean: a, b?"`` with the known names closest to ``name``, or ``""`` when none is close.

    ``show`` writes a match as the user should type it (matched lowercased, shown in its own case, say).
    """
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(map(show, close))}?" if close else ""


class Registry(Generic[T]):
    """Entries by lowercase name, filled by the modules that define them.

    ``load`` imports those modules; it runs before every read, so a lookup never sees a partial
    registry whatever was imported first. ``listing`` ends the error of an unknown name (where to
    see the names); by default the error lists them itself.
    """

    def __init__(self, kind: str, load: Callable[[], None] | None = None, listing: str | None = None) -> None:
        self.kind, self._load, self.listing = kind, load, listing
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name taken twice is a bug in the package, not user input."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            self._load()
        return self._entries

    def find(self, name: str) -> T | None:
        """The entry of ``name`` (any case, surrounding spaces ignored), or None."""
        return self._loaded().get(name.strip().lower())

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name is one error line with the closest known names."""
        entry = self.find(name)
        if entry is None:
            listing = self.listing or f"Known: {', '.join(self.names())}"
            raise CnnlabError(f"unknown {self.kind} {name!r}.{did_you_mean(name.strip().lower(), self._entries)} "
                              f"{listing}")
        return entry

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._loaded())

    def entries(self) -> list[T]:
        """Every entry, in the order of :meth:`names`."""
        entries = self._loaded()
        return [entries[name] for name in sorted(entries)]

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None
