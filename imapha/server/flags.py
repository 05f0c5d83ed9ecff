"""Flag lists from clients: system flags and keywords (RFC 3501 §2.3.2, §9 flag-list).

System flags map to Maildir letters (:data:`imapha.maildir.names.FLAG_LETTERS`);
``\\Recent`` cannot be set by a client and is ignored (§2.3.2); any other
``\\`` flag is ``BAD``. Keywords must be atoms Dovecot can store
(:func:`imapha.maildir.keywords.valid_keyword`); they compare case-sensitively
as Dovecot stores them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imapha.imap.tokens import Atom, Token
from imapha.maildir.keywords import FILENAME as KEYWORDS_FILE
from imapha.maildir.keywords import valid_keyword
from imapha.maildir.names import FLAG_LETTERS
from imapha.server.errors import bad

__all__ = ["keywords_mtime_grows", "parse_flags"]

_BY_UPPER = {f.upper(): f for f in FLAG_LETTERS}


def parse_flags(tokens: Iterable[Token]) -> tuple[frozenset[str], frozenset[str]]:
    system: set[str] = set()
    keywords: set[str] = set()
    for tok in tokens:
        if not isinstance(tok, Atom):
            raise bad("Flags must be atoms")
        value = tok.value
        if value.startswith("\\"):
            canonical = _BY_UPPER.get(value.upper())
            if canonical is not None:
                system.add(canonical)
            elif value.upper() != "\\RECENT":
                raise bad(f"Unknown system flag {value}" if len(value) < 40 else
                          "Unknown system flag")
        elif valid_keyword(value):
            keywords.add(value)
        else:
            raise bad("Invalid keyword")
    return frozenset(system), frozenset(keywords)


@contextlib.contextmanager
def keywords_mtime_grows(maildir: Path) -> Iterator[None]:
    """Around a change that may add keywords: make ``dovecot-keywords``' mtime grow.

    Dovecot re-reads the file only when its mtime, in whole seconds, differs
    from the one it last synced (its own writers push the mtime forward by a
    second when needed). A rewrite within the same second would leave Dovecot
    showing ``unknown-N`` keywords, so after one we set the mtime to the old
    one plus a second. (A workaround here until ``imapha.maildir.keywords.add``
    does it under its lock.)
    """
    path = maildir / KEYWORDS_FILE
    before = _stat(path)
    yield
    after = _stat(path)
    if (before is not None and after is not None and after.st_ino != before.st_ino
            and int(after.st_mtime) <= int(before.st_mtime)):
        with contextlib.suppress(OSError):
            os.utime(path, (after.st_atime, int(before.st_mtime) + 1))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None
