"""Flag lists from clients: system flags and keywords (RFC 3501 §2.3.2, §9 flag-list).

System flags map to Maildir letters (:data:`imapha.maildir.names.FLAG_LETTERS`);
``\\Recent`` cannot be set by a client and is ignored (§2.3.2); any other
``\\`` flag is ``BAD``. Keywords must be atoms Dovecot can store
(:func:`imapha.maildir.keywords.valid_keyword`); they compare case-sensitively
as Dovecot stores them.
"""

from __future__ import annotations

from collections.abc import Iterable

from imapha.imap.tokens import Atom, Token
from imapha.maildir.keywords import valid_keyword
from imapha.maildir.names import FLAG_LETTERS
from imapha.server.errors import bad

__all__ = ["parse_flags"]

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
