"""Config issues: what is wrong, where (file, line, dotted key), and why.

Theory of operation
-------------------
Loading collects every issue it finds instead of stopping at the first one,
so an operator fixes a config in one round. Each issue is a frozen value;
:class:`ConfigError` carries them all, sorted by line, and its text lists one
per line in the ``file:line: key: message`` shape compilers use, which editors
and CI logs turn into links.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file.

    ``line`` is 1-based, or ``None`` when the problem has no place in the file
    (a required table that is missing altogether). ``key`` is the dotted path
    of the offending key, e.g. ``vips[1].vrid`` or ``nodes.a.proxy.metrics``.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"

    def sort_key(self) -> tuple[int, str, str]:
        return (self.line if self.line is not None else 0, self.key, self.message)


class ConfigError(Exception):
    """The config is unusable; ``issues`` says every reason found."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        unique = dict.fromkeys(issues)
        self.issues: tuple[ConfigIssue, ...] = tuple(sorted(unique, key=ConfigIssue.sort_key))
        super().__init__("\n".join(str(issue) for issue in self.issues))
