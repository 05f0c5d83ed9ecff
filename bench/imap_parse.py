"""IMAP parse throughput: imapha.imap against the stdlib's imaplib, same bytes.

1. Responses: a realistic server-to-client mix (greeting, CAPABILITY, LOGIN OK
   [CAPABILITY ...], SELECT's untagged data, FETCH of flags and of whole
   messages as literals, SEARCH, tagged OKs), parsed by
   :class:`imapha.imap.ClientConnection` and by ``imaplib.IMAP4._get_response``
   reading the same octets from memory. Note the difference in work: imaplib
   only splits lines, reads literals and keeps the rest as raw bytes; imapha
   also tokenizes every list, string and response code into typed events.
2. Commands: a client-to-server mix parsed by
   :class:`imapha.imap.ServerConnection` (the stdlib has no command parser, so
   the baseline here is the same stream framed by imaplib's response reader,
   i.e. "just split lines and literals").

Run: ``.venv/bin/python -m bench.imap_parse`` (about 15 s).
"""

from __future__ import annotations

import imaplib
import io
import re

from bench.common import Result, rate, report
from imapha.imap import (
    AUTHENTICATED,
    BACKEND_RESPONSES,
    ClientConnection,
    ContinuationRequired,
    Sentinel,
    ServerConnection,
)

SECONDS = 2.5
ROUNDS = 20  # sessions per measured call


def _message(n: int) -> bytes:
    line = b"Line %d of the body of message %d, plain text.\r\n"
    body = b"".join(line % (i, n) for i in range(40))
    head = (
        b"Return-Path: <alice@example.org>\r\nFrom: Alice <alice@example.org>\r\n"
        b"To: bob@example.org\r\nSubject: report %d\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <%d@example.org>\r\n\r\n" % (n, n)
    )
    return head + body


def response_session(r: int) -> bytes:
    """One login-select-fetch session as Dovecot would answer it; tags r<r>a1..a6."""
    out = [
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
        b"STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
        b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
        b"AUTH=PLAIN\r\n"
        b"a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n",
        b'* ID ("name" "Dovecot")\r\na2 OK ID completed.\r\n',
        b"a3 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT "
        b"THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
        b"I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
        b"LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY LITERAL+ NOTIFY] Logged in\r\n",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
        b"Flags permitted.\r\n* 50 EXISTS\r\n* 0 RECENT\r\n"
        b"* OK [UIDVALIDITY 1764000000] UIDs valid\r\n* OK [UIDNEXT 51] Predicted next UID\r\n"
        b"a4 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n",
    ]
    out += [
        b"* %d FETCH (UID %d FLAGS (\\Seen) RFC822.SIZE 2345)\r\n" % (i, i) for i in range(1, 51)
    ]
    out.append(b"a5 OK Fetch completed (0.001 + 0.000 secs).\r\n")
    for i in range(1, 6):
        msg = _message(i)
        out.append(b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (i, i, len(msg), msg))
    out.append(b"* SEARCH " + b" ".join(b"%d" % i for i in range(1, 51)) + b"\r\n")
    out.append(b"a6 OK Fetch completed.\r\n")
    return re.sub(rb"(?m)^a(\d) ", rb"r%da\1 " % r, b"".join(out))


TAGS = [f"r{r}a{i}" for r in range(ROUNDS) for i in range(1, 7)]


def parse_imapha_responses(data: bytes) -> int:
    conn = ClientConnection(BACKEND_RESPONSES)
    conn._inflight = dict.fromkeys(TAGS, "X")  # as if the commands had been sent
    conn.receive_data(data)
    n = 0
    while not isinstance(conn.next_event(), Sentinel):
        n += 1
    return n


class _MemoryIMAP(imaplib.IMAP4):
    """imaplib reading from memory: its own response reader, no socket."""

    def __init__(self, data: bytes) -> None:  # no super().__init__: it would connect
        self.debug = 0
        self.state = "AUTH"
        self.literal = None
        self.tagged_commands = dict.fromkeys((t.encode() for t in TAGS), None)
        self.untagged_responses = {}
        self.continuation_response = ""
        self.is_readonly = False
        self.tagnum = 0
        self._tls_established = False
        self._cmd_log_len = 10  # imaplib keeps a ring of the last lines (as in __init__)
        self._cmd_log_idx = 0
        self._cmd_log: dict[int, tuple[bytes, float]] = {}
        self._mode_ascii()
        tagre = rb"(?P<tag>r\d+a\d+) (?P<type>[A-Z]+) (?P<data>.*)"
        self.tagre = re.compile(tagre, re.ASCII)  # type: ignore[arg-type]
        self.file = io.BytesIO(data)


def parse_imaplib_responses(data: bytes) -> int:
    imap = _MemoryIMAP(data)
    n = 0
    end = len(data)
    while imap.file.tell() < end:
        imap._get_response()
        n += 1
    return n


def command_session() -> bytes:
    out = [
        b"a1 CAPABILITY\r\n",
        b'a2 ID ("name" "Thunderbird" "version" "128.5.0")\r\n',
        b"a3 LOGIN alice {11+}\r\ns3cret pass\r\n",
        b'a4 SELECT "INBOX"\r\n',
        b"a5 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc "
        b"Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
        b"Content-Type Reply-To)])\r\n",
        b"a6 UID STORE 12 +FLAGS.SILENT (\\Seen)\r\n",
    ]
    msg = _message(1)
    out.append(b"a7 APPEND Sent (\\Seen) {%d+}\r\n%s\r\n" % (len(msg), msg))
    out.append(b"a8 UID SEARCH UNDELETED SINCE 1-Nov-2026\r\n")
    out.append(b"a9 NOOP\r\n")
    return b"".join(out)


def parse_imapha_commands(data: bytes) -> int:
    conn = ServerConnection(AUTHENTICATED)
    conn.receive_data(data)
    n = 0
    while not isinstance(ev := conn.next_event(), Sentinel):
        if not isinstance(ev, ContinuationRequired):
            n += 1
    return n


def main() -> None:
    responses = b"".join(response_session(r) for r in range(ROUNDS))
    n_ours = parse_imapha_responses(responses)
    n_theirs = parse_imaplib_responses(responses)
    assert n_ours == n_theirs, (n_ours, n_theirs)
    size = len(responses)
    ours = rate(lambda: parse_imapha_responses(responses), SECONDS)
    theirs = rate(lambda: parse_imaplib_responses(responses), SECONDS)
    report(Result("imap responses (typed events vs raw lines)", ours * size / 1e6,
                  theirs * size / 1e6, "MB/s", "imaplib"))
    report(Result("imap responses per second", ours * n_ours, theirs * n_theirs,
                  "responses/s", "imaplib"))

    commands = command_session() * ROUNDS
    n_cmd = parse_imapha_commands(commands)
    # Baseline: the same octets only framed (imaplib's line + literal reader).
    framed = commands.replace(b"{%d+}" % len(_message(1)), b"{%d}" % len(_message(1)))
    framed = framed.replace(b"{11+}", b"{11}")
    framed = re.sub(rb"(?m)^a\d+ ", rb"* CMD ", framed)  # untagged: no tag bookkeeping
    n_frames = parse_imaplib_responses(framed)
    assert n_frames == n_cmd, (n_frames, n_cmd)
    csize = len(commands)
    ours_c = rate(lambda: parse_imapha_commands(commands), SECONDS)
    theirs_c = rate(lambda: parse_imaplib_responses(framed), SECONDS)
    report(Result("imap commands (typed commands vs imaplib framing only)",
                  ours_c * csize / 1e6, theirs_c * csize / 1e6, "MB/s", "imaplib framing"))


if __name__ == "__main__":
    main()
