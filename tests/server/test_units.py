"""Pure parts of the backend, no sockets: SHA-crypt, passwd-file, state table, LMTP."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from imapha.server import state
from imapha.server.lmtp import DeliveryResult, LmtpSession
from imapha.server.passwd import UserDb, check_password
from imapha.server.shacrypt import sha_crypt, verify
from tests.prereq import need_binary


def test_sha_crypt_matches_the_published_test_vectors() -> None:
    # From "Unix crypt using SHA-256 and SHA-512" (Drepper), the spec's own vectors.
    assert sha_crypt(b"Hello world!", "saltstring", algorithm="sha512") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4"
        "OTLiBFdcbYEdFCoEOfaS35inz1")
    assert sha_crypt(b"Hello world!", "saltstring", algorithm="sha256") == (
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5")
    assert sha_crypt(b"Hello world!", "saltstringsaltstring", algorithm="sha512",
                     rounds=10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
        "UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.")


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT"])
@pytest.mark.parametrize("password", ["secret", "pässwörd", "", "a" * 100])
def test_sha_crypt_verifies_doveadm_hashes(scheme: str, password: str) -> None:
    need_binary("doveadm")
    import subprocess

    out = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password or "x"],
                         capture_output=True, check=True, timeout=30).stdout.decode().strip()
    stored = out.split("}", 1)[1]
    assert verify((password or "x").encode(), stored)
    assert not verify(b"wrong" + password.encode(), stored)


def test_password_schemes() -> None:
    import base64
    import hashlib

    assert check_password("{PLAIN}hunter2", b"hunter2")
    assert not check_password("{PLAIN}hunter2", b"hunter3")
    salt = b"NaCl"
    ssha = base64.b64encode(hashlib.sha512(b"pw" + salt).digest() + salt).decode()
    assert check_password("{SSHA512}" + ssha, b"pw")
    assert not check_password("{SSHA512}" + ssha, b"pW")
    assert not check_password("{MD5-CRYPT}$1$abc$def", b"pw")  # unsupported: never matches
    assert not check_password("{SSHA}!!!notbase64", b"pw")


def test_passwd_file_reloads_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# comment\nalice:{PLAIN}one:1000:1000::/home/alice::\n")
    db = UserDb(path)
    assert db.check("alice", b"one") is not None
    assert db.check("bob", b"two") is None
    path.write_text("alice:{PLAIN}uno::::::\nbob:{PLAIN}two\n")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert db.check("alice", b"one") is None
    assert db.check("alice", b"uno") is not None
    assert db.check("bob", b"two") is not None
    path.unlink()
    assert db.check("bob", b"two") is not None  # the last good table is kept
    assert "two" not in repr(db.get("bob"))


def test_state_table_is_consistent() -> None:
    for name, states in state.ALLOWED.items():
        assert states, name
        assert state.State.LOGOUT not in states
    for (src, _event), dst in state.TRANSITIONS.items():
        assert src is not state.State.LOGOUT or dst is state.State.LOGOUT
    caps = state.capabilities(state.State.NOT_AUTHENTICATED, starttls=True,
                              mechanisms=("PLAIN",), implemented=frozenset(state.ALLOWED))
    assert "STARTTLS" in caps and "AUTH=PLAIN" in caps
    caps = state.capabilities(state.State.AUTHENTICATED, starttls=True, mechanisms=("PLAIN",),
                              implemented=frozenset({"IDLE"}))
    assert "STARTTLS" not in caps and "IDLE" in caps and "MOVE" not in caps


def _lmtp(known: set[str], delivered: list[tuple[str, str, bytes]],
          fail: frozenset[str] = frozenset()) -> LmtpSession:
    def deliver(user: str, sender: str, data: bytes) -> DeliveryResult:
        if user in fail:
            return DeliveryResult(False, True)
        delivered.append((user, sender, data))
        return DeliveryResult(True)

    return LmtpSession("mx", lambda u: u in known, deliver, max_size=100)


def test_lmtp_pipelined_session() -> None:
    delivered: list[tuple[str, str, bytes]] = []
    s = _lmtp({"a", "b", "c"}, delivered, fail=frozenset({"c"}))
    assert s.greeting().startswith(b"220 ")
    out = s.receive(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<zz@x>\r\n"
                    b"RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\nSubject: t\r\n\r\n..x\r\n.\r\n")
    lines = out.decode().splitlines()
    assert lines[-4].startswith("354")
    assert [line[:3] for line in lines[-3:]] == ["250", "250", "451"]
    assert any(line.startswith("550") and "zz@x" in line for line in lines)
    assert delivered == [("a", "s@x", b"Subject: t\r\n\r\n.x\r\n"),
                         ("b", "s@x", b"Subject: t\r\n\r\n.x\r\n")]
    assert s.receive(b"DATA\r\n").startswith(b"503")
    assert s.receive(b"QUIT\r\n").startswith(b"221") and s.closed


def test_lmtp_refuses_oversized_and_out_of_order() -> None:
    delivered: list[tuple[str, str, bytes]] = []
    s = _lmtp({"a"}, delivered)
    assert s.receive(b"MAIL FROM:<s@x>\r\n").startswith(b"503")
    assert s.receive(b"HELO x\r\n").startswith(b"500")
    s.receive(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@x>\r\nDATA\r\n")
    out = s.receive(b"x" * 200 + b"\r\n.\r\n")
    assert out.startswith(b"552") and not delivered
