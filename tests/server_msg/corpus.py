"""Tricky messages shared by the golden, property, Dovecot and benchmark checks.

Every entry is raw bytes exactly as stored in a Maildir file. Names say what each
one exercises; the Dovecot comparison delivers all of them.
"""

from __future__ import annotations

import base64

from imapha.imap.commands import Command, parse_command
from imapha.imap.framer import Frame, Framer
from imapha.imap.limits import AUTHENTICATED
from imapha.imap.tokens import Token


def command_args(line: bytes) -> tuple[Token, ...]:
    """The argument tokens the wire layer makes of one command (literals inline, LITERAL+)."""
    framer = Framer(AUTHENTICATED, handshake=False)
    framer.feed(line if line.endswith(b"\r\n") else line + b"\r\n")
    frame = framer.next()
    assert isinstance(frame, Frame), frame
    cmd = parse_command(frame, AUTHENTICATED)
    assert isinstance(cmd, Command), cmd
    return cmd.args


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8", "surrogateescape")


SIMPLE = _crlf(
    """Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
From: Fred Foobar <foobar@Blurdybloop.example>
Subject: afternoon meeting
To: mooch@owatagu.siam.example
Message-Id: <B27397-0100000@Blurdybloop.example>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
"""
)

NO_CONTENT_TYPE = _crlf(
    """From: a@example.org
To: b@example.org, "Doe, Jane" <jane@example.org>, undisclosed-recipients:;
Cc: Team: x@example.org, "Y" <y@example.org>;, z@example.org
Subject: no content type
Date: Tue, 1 Jan 2019 00:00:00 +0000

just text
second line
"""
)

MULTIPART_MIXED = _crlf(
    """From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>
Sender: robot@example.org
Reply-To: replies@example.org
To: "Bob" <bob@example.org>
Bcc: hidden@example.org
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= and more
 folded subject line
Date: Wed, 02 Oct 2024 10:11:12 +0200
In-Reply-To: <parent@example.org>
Message-ID: <mixed@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==outer=="
Content-Language: en

This is the preamble.
--==outer==
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe, the word zebra=
crossing is split by a soft break.
--==outer==
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

alternative plain
--inner
Content-Type: text/html; charset=us-ascii
Content-ID: <html@example.org>
Content-Description: the HTML part
Content-Disposition: inline

<p>alternative html</p>
--inner--
--==outer==
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"; size=12
Content-Location: http://example.org/data.bin
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

"""
    + base64.encodebytes(b"secret needle in base64\n").decode()
    + """--==outer==--
This is the epilogue.
"""
)

NESTED_RFC822 = _crlf(
    """From: outer@example.org
To: someone@example.org
Subject: Fwd: inner
Date: Thu, 3 Oct 2024 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

see attached
--b1
Content-Type: message/rfc822
Content-Disposition: attachment; filename="inner.eml"

From: inner@example.org
To: outer@example.org
Subject: inner subject
Date: Wed, 2 Oct 2024 07:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b2"

--b2
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

inner plain ünïcödé
--b2
Content-Type: text/html

<b>inner html</b>
--b2--

--b1--
"""
)

EIGHT_BIT_HEADERS = _crlf(
    """From: Jörg <jörg@exämple.org>
To: =?iso-8859-1?q?Andr=E9?= <andre@example.org>
Subject: Grüße raw 8-bit
Date: Fri, 4 Oct 2024 12:00:00 -0700
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Körper
"""
)

BARE_LF = (
    b"From: lf@example.org\n"
    b"To: lf2@example.org\n"
    b"Subject: bare LF endings\n"
    b"Date: Sat, 5 Oct 2024 01:02:03 +0000\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=lf\n"
    b"\n"
    b"--lf\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"one\n"
    b"--lf\n"
    b"Content-Type: text/plain; charset=\"iso-8859-1\"\n"
    b"\n"
    b"two\n"
    b"--lf--\n"
)

MISSING_FINAL_BOUNDARY = _crlf(
    """From: x@example.org
Subject: truncated multipart
Content-Type: multipart/mixed; boundary=zz

--zz
Content-Type: text/plain

first
--zz
Content-Type: text/plain

second, never closed
"""
)

HEADER_ONLY = b"From: h@example.org\r\nSubject: no body at all\r\n"

ODD_PARAMS = _crlf(
    """From: "Quoted \\"name\\"" <q@example.org>
To: <bare@example.org>
Subject: params
Message-ID: <odd@example.org>
Content-Type: text/plain; charset="utf-8"; name*=utf-8''%C3%A4.txt
Content-Disposition: attachment; filename*=utf-8''%C3%A4.txt
Content-Language: en, de

body
"""
)

WEIRD_ADDRESSES = _crlf(
    """From: nodomain
To: a@example.org (Comment Name), John Q. Public <jqp@example.org>
Cc: <@route1.example,@route2.example:x@y.example>, "quoted local"@example.org
Reply-To:
Subject:
Message-ID: <id1@example.org> (comment)
Content-Type: text/plain; format=flowed
Content-Disposition: inline

x
"""
)

DIGEST = _crlf(
    """From: digest@example.org
Subject: digest
Content-Type: multipart/digest; boundary="d"

preamble
--d

From: one@example.org
Subject: first in digest

one
--d
Content-Type: text/plain

not a message
--d--
"""
)

EMPTY_MULTIPART = _crlf(
    """From: e@example.org
Subject: multipart with no boundary found
Content-Type: multipart/mixed; boundary="never"

just some text
"""
)

ODD_SYNTAX = _crlf(
    """Subject:no space after colon
Subject: a second subject
From:	Tab <tab@example.org>
To: ,, a@example.org,
Cc: =?utf-8?q?Gr=C3=BCppe?=: g1@example.org;
In-Reply-To: <a@example.org>
 <b@example.org>
Date:  Sat, 5 Oct 2024
   10:00:00 +0000
Content-Type: Text/HTML ; Charset = "UTF-8" (a comment)
Content-Disposition: INLINE
Content-Language: en (English)
Content-Location: http://example.org/
 folded

<html>x</html>
"""
)

CONTINUATIONS = _crlf(
    """From: c@example.org
Subject: rfc2231
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/octet-stream; name*0="long"; name*1="name.bin"
Content-Disposition: attachment; filename*0*=utf-8''%C3%A4; filename*1=".txt"

data
--b{PAD}
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

RnJvbTogeEBleGFtcGxlLm9yZwpTdWJqZWN0OiBiNjQKCmJvZHkK
--b
Content-Type: text/plain
Content-Transfer-Encoding: base64

aGVsbG8gd29ybGQK
aGVsbG8gd29ybGQK
--b--
""".replace("{PAD}", "  ")  # a delimiter line with trailing white space
)

PREFIX_BOUNDARIES = _crlf(
    """From: p@example.org
Subject: boundary prefixes
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain

inner one
--b1--

--b
Content-Type: multipart/mixed

no boundary parameter here
--b--
"""
)

HEADER_ONLY_PARTS = _crlf(
    """From: hp@example.org
Subject: parts without bodies
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; name=a
--b
Content-Type: text/plain; name=b

--b

--b
Content-Type: message/rfc822

From: inner@example.org
Subject: inner header only
--b--
"""
)

UNKNOWN_CTE = _crlf(
    """From: u@example.org
Subject: unknown transfer encoding
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=u

--u
Content-Type: application/octet-stream
Content-Transfer-Encoding: x-uuencode

begin 644 x
--u
Content-Type: text/plain
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 soft=
break
--u
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AGEAYgBj
--u--
"""
)

NO_HEADER = b"\r\nA body with no header at all.\r\n"
EMPTY = b""
MIXED_ENDINGS = b"From: m@example.org\r\nSubject: mixed\n\r\nline one\nline two\r\n"
NUL_BODY = b"From: n@example.org\r\nSubject: nul\r\n\r\nbefore\x00after\r\n"
LONG_SUBJECT = b"From: l@example.org\r\nSubject: " + b"x" * 1500 + b"\r\n\r\nbody\r\n"

CORPUS: dict[str, bytes] = {
    "simple": SIMPLE,
    "no_content_type": NO_CONTENT_TYPE,
    "multipart_mixed": MULTIPART_MIXED,
    "nested_rfc822": NESTED_RFC822,
    "eight_bit_headers": EIGHT_BIT_HEADERS,
    "bare_lf": BARE_LF,
    "missing_final_boundary": MISSING_FINAL_BOUNDARY,
    "header_only": HEADER_ONLY,
    "odd_params": ODD_PARAMS,
    "weird_addresses": WEIRD_ADDRESSES,
    "digest": DIGEST,
    "empty_multipart": EMPTY_MULTIPART,
    "odd_syntax": ODD_SYNTAX,
    "continuations": CONTINUATIONS,
    "prefix_boundaries": PREFIX_BOUNDARIES,
    "header_only_parts": HEADER_ONLY_PARTS,
    "unknown_cte": UNKNOWN_CTE,
    "no_header": NO_HEADER,
    "empty": EMPTY,
    "mixed_endings": MIXED_ENDINGS,
    "nul_body": NUL_BODY,
    "long_subject": LONG_SUBJECT,
}
