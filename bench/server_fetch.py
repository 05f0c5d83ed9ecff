"""FETCH (ENVELOPE BODYSTRUCTURE) rendering rate against the stdlib ``email`` parser.

Corpus: a mailbox-like mix built here (plain text, multipart/alternative with
HTML, mixed with base64 attachments of 20-200 KB, a forwarded message/rfc822,
encoded-word headers), the same bytes for both sides.

* imapha: per message, :class:`imapha.server.message.ParsedMessage` and
  :func:`imapha.server.fetchitems.render_fetch` of ``(ENVELOPE BODYSTRUCTURE)``:
  parse with offsets, then write the whole response data, literals and all.
* baseline: ``email.message_from_bytes`` (compat32 policy, the fast one) and
  the equivalent walk: every part's content type, parameters, disposition,
  transfer encoding, id, description, size of its payload and line count of text
  parts, and the envelope headers with ``getaddresses`` for address fields. It
  builds no response, so it does less than we do.

A second line measures ``BODY.PEEK[2]`` (one section of a large message), where
imapha slices and the stdlib must re-serialize the part (``as_bytes``).

Run: ``.venv/bin/python -m bench.server_fetch`` (about 15 s).
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import random
from collections.abc import Callable
from email.message import Message
from email.utils import getaddresses

from bench.common import Result, rate, report
from imapha.imap.tokens import Atom, PList
from imapha.server.fetchitems import FetchSource, parse_fetch_items, render_fetch

SECONDS = 3.0
MESSAGES = 60


def _text(rng: random.Random, lines: int) -> bytes:
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"zebra", b"crossing", b"report"]
    return b"".join(b" ".join(rng.choice(words) for _ in range(12)) + b"\r\n"
                    for _ in range(lines))


def _header(n: int, ctype: bytes) -> bytes:
    return (
        b"Return-Path: <alice@example.org>\r\n"
        b"Received: from mx.example.org by imap.example.org; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>\r\n"
        b"To: Bob <bob@example.org>, \"Doe, Jane\" <jane@example.org>\r\n"
        b"Cc: team: carol@example.org, dave@example.org;\r\n"
        b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= report %d\r\n"
        b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <%d@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: %s\r\n\r\n" % (n, n, ctype)
    )


def build_corpus(count: int = MESSAGES, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            out.append(_header(n, b"text/plain; charset=utf-8") + _text(rng, 40))
        elif kind == 1:
            out.append(
                _header(n, b'multipart/alternative; boundary="alt"')
                + b"--alt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + _text(rng, 30)
                + b"--alt\r\nContent-Type: text/html; charset=us-ascii\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>"
                + _text(rng, 30) + b"</p>\r\n--alt--\r\n"
            )
        elif kind == 2:
            blob = base64.encodebytes(rng.randbytes(rng.randint(20_000, 200_000)))
            out.append(
                _header(n, b'multipart/mixed; boundary="mix"')
                + b"--mix\r\nContent-Type: text/plain\r\n\r\n" + _text(rng, 10)
                + b"--mix\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n"
                b"Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + blob.replace(b"\n", b"\r\n") + b"--mix--\r\n"
            )
        else:
            inner = _header(n + 1000, b"text/plain") + _text(rng, 20)
            out.append(
                _header(n, b'multipart/mixed; boundary="fwd"')
                + b"--fwd\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
                + b"--fwd\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--fwd--\r\n"
            )
    return out


_REQUEST = parse_fetch_items((PList((Atom("ENVELOPE"), Atom("BODYSTRUCTURE"))),))
_SECTION = parse_fetch_items((Atom("BODY.PEEK[2]"),))


def _source(raw: bytes) -> FetchSource:
    return FetchSource(uid=1, flags=(), internaldate=0.0, size=len(raw), read=lambda: raw)


def imapha_structure(corpus: list[bytes]) -> int:
    return sum(len(render_fetch(_REQUEST, _source(raw))) for raw in corpus)


def _walk(part: Message) -> int:
    n = 0
    for sub in part.walk():
        sub.get_content_type()
        sub.get_params()
        sub.get("content-disposition")
        sub.get("content-transfer-encoding")
        sub.get("content-id")
        sub.get("content-description")
        payload = sub.get_payload()
        if isinstance(payload, str):
            n += len(payload)
            if sub.get_content_maintype() == "text":
                n += payload.count("\n")
    return n


def stdlib_structure(corpus: list[bytes]) -> int:
    total = 0
    for raw in corpus:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        for name in ("date", "subject", "in-reply-to", "message-id"):
            msg.get(name)
        for name in ("from", "sender", "reply-to", "to", "cc", "bcc"):
            total += len(getaddresses(msg.get_all(name, [])))
        total += _walk(msg)
    return total


def imapha_section(corpus: list[bytes]) -> int:
    return sum(len(render_fetch(_SECTION, _source(raw))) for raw in corpus)


def stdlib_section(corpus: list[bytes]) -> int:
    total = 0
    for raw in corpus:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        if msg.is_multipart():
            parts = msg.get_payload()
            if isinstance(parts, list) and len(parts) > 1:
                second = parts[1]
                if isinstance(second, Message):
                    total += len(second.as_bytes())
    return total


def _per_message(fn: Callable[[list[bytes]], int], corpus: list[bytes]) -> Callable[[], int]:
    """One message per call, round robin (``rate`` checks its clock every 64 calls)."""
    singles = [[m] for m in corpus]
    it = itertools.cycle(singles)
    return lambda: fn(next(it))


def main() -> None:
    corpus = build_corpus()
    size = sum(len(m) for m in corpus)
    print(f"corpus: {len(corpus)} messages, {size / 1e6:.1f} MB", flush=True)
    assert imapha_structure(corpus) and stdlib_structure(corpus)
    ours = rate(_per_message(imapha_structure, corpus), SECONDS)
    theirs = rate(_per_message(stdlib_structure, corpus), SECONDS)
    report(Result("FETCH (ENVELOPE BODYSTRUCTURE) vs email.message_from_bytes + walk",
                  ours, theirs, "messages/s", "stdlib email"))
    ours_s = rate(_per_message(imapha_section, corpus), SECONDS)
    theirs_s = rate(_per_message(stdlib_section, corpus), SECONDS)
    report(Result("FETCH BODY.PEEK[2] vs email parse + part.as_bytes()",
                  ours_s, theirs_s, "messages/s", "stdlib email"))


if __name__ == "__main__":
    main()
