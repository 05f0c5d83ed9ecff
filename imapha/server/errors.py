"""Errors that mirror the wire: a command fails with a status, a code and a text.

A handler raises :class:`CommandError`; the dispatcher turns it into the tagged
``NO``/``BAD`` response. Its text is written for the client; a Python
exception's own text never reaches one (the dispatcher answers any other
exception with ``NO [SERVERBUG]`` and logs it).
"""

from __future__ import annotations

from imapha.imap.codes import ResponseCode
from imapha.imap.responses import Status

__all__ = ["CommandError", "bad", "no"]


class CommandError(Exception):
    def __init__(self, status: Status, text: str, code: ResponseCode | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: ResponseCode | str | None = None) -> CommandError:
    return CommandError(Status.NO, text, ResponseCode(code) if isinstance(code, str) else code)


def bad(text: str, code: ResponseCode | str | None = None) -> CommandError:
    return CommandError(Status.BAD, text, ResponseCode(code) if isinstance(code, str) else code)
