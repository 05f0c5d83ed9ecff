"""The session never crashes on arbitrary input (hypothesis, sans-I/O, a real Maildir).

Whatever the octets, ``Session.receive`` returns actions (never raises), every
response line it writes is a well-formed IMAP response line, and a session
that was not told to close still answers a NOOP afterwards.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapha.server.passwd import UserDb
from imapha.server.session import Action, Close, Hold, ServerContext, Session

WORDS = ["SELECT", "EXAMINE", "FETCH", "UID", "STORE", "SEARCH", "COPY", "MOVE", "APPEND",
         "LIST", "LSUB", "STATUS", "CREATE", "DELETE", "RENAME", "EXPUNGE", "IDLE", "DONE",
         "NOOP", "CHECK", "CLOSE", "UNSELECT", "ENABLE", "NAMESPACE", "ID", "AUTHENTICATE",
         "PLAIN", "LOGIN", "CAPABILITY", "INBOX", "Sent", "1:*", "*", "1", "2:4", "0",
         "(FLAGS)", "BODY[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5>", "+FLAGS",
         "FLAGS.SILENT", "(\\Seen)", "(\\Bogus)", "\"\"", "\"%\"", "{3}", "{2+}", "NIL", "(",
         ")", "OR", "NOT", "CHARSET", "UTF-8", "SUBJECT", "x", "ALL", "\"1-Jan-2020\"", "~{1}"]

_RESPONSE_LINE = re.compile(rb"^(\* |\+|[A-Za-z0-9.]+ (OK|NO|BAD)\b)")

line_tokens = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), min_size=1, max_size=8)
lines = st.builds(lambda tag, toks: (tag + " " + " ".join(toks)).encode("utf-8", "replace"),
                  st.sampled_from(["a", "b1", "*", "+", ""]), line_tokens)
chunks = st.lists(st.one_of(st.binary(max_size=64), lines.map(lambda b: b + b"\r\n")),
                  max_size=12)


def _context() -> tuple[ServerContext, Path]:
    root = Path(tempfile.mkdtemp(prefix="imapha-fuzz-"))
    (root / "passwd").write_text("u:{PLAIN}p::::::\n")
    (root / "mail").mkdir()
    return ServerContext(UserDb(root / "passwd"), root / "mail"), root


def _carry(session: Session, actions: list[Action]) -> list[Action]:
    """As the shell does: after a Hold (a failed login's delay) the session resumes."""
    out: list[Action] = []
    while True:
        out += actions
        if not any(isinstance(a, Hold) for a in actions):
            return out
        actions = session.resume()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=chunks, logged_in=st.booleans())
def test_session_survives_anything(data: list[bytes], logged_in: bool) -> None:
    ctx, root = _context()
    try:
        session = Session(ctx, "192.0.2.1")
        out = session.greeting()
        if logged_in:
            out += session.receive(b"l1 LOGIN u p\r\nl2 CREATE Sent\r\nl3 APPEND INBOX {3+}\r\n"
                                   b"a\r\n\r\nl4 SELECT INBOX\r\n")
        closed = False
        for chunk in data:
            for action in _carry(session, session.receive(chunk)):
                if isinstance(action, Close):
                    closed = True
                elif isinstance(action, bytes):
                    out.append(action)
        written = b"".join(a for a in out if isinstance(a, bytes))
        # A handler that raised on input shows as SERVERBUG: none may.
        assert b"[SERVERBUG]" not in written
        for line in written.split(b"\r\n"):
            # Literal contents may follow a {n} line; only check lines that look
            # like they start a response.
            if line[:1] in (b"*", b"+") or re.match(rb"^[a-z][0-9]? ", line):
                assert _RESPONSE_LINE.match(line), line
        if not closed and not session.closed:
            # Whatever state the input left (mid-literal, IDLE, AUTHENTICATE), a
            # fresh, complete command eventually gets a tagged answer.
            answers = _carry(session, session.receive(b"DONE\r\n*\r\nzz NOOP\r\n"))
            text = b"".join(a for a in answers if isinstance(a, bytes))
            assert b"zz " in text or session.closed or session.conn.mode.value != "commands"
    finally:
        shutil.rmtree(root, ignore_errors=True)
