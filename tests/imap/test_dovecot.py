"""The client side of the wire layer against a REAL Dovecot (imapha.lab.dovecot).

Proves the response parser reads what Dovecot 2.3 actually sends: its greeting
with [CAPABILITY ...], CAPABILITY, ID, LOGIN's OK [CAPABILITY ...] and
NO [AUTHENTICATIONFAILED], AUTHENTICATE PLAIN with and without SASL-IR, the
synchronizing-literal handshake, SELECT's untagged data and LOGOUT's BYE.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    AuthenticateResponse,
    CapabilityResponse,
    ClientConnection,
    Command,
    ContinuationRequest,
    ContinueCommand,
    Greeting,
    Id,
    IdResponse,
    Login,
    Logout,
    Quoted,
    Response,
    Sentinel,
    Status,
    TaggedResponse,
    UntaggedData,
    UntaggedStatus,
    originating_id,
)
from imapha.imap.commands import Authenticate, Capability
from imapha.imap.sasl import Credentials, encode_plain
from tests.prereq import need_binary

USERS = {"alice": "s3cret", "bob": 'pä ss"w\\rd'}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[tuple[str, int]]:
    need_binary("dovecot")
    need_binary("doveadm")
    from imapha.lab.dovecot import DovecotServer, traversable_dir

    root = traversable_dir("imapha-imapwire-")
    try:
        with DovecotServer(root, USERS) as dv:
            yield dv.listen, dv.imap_port
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Session:
    """A blocking socket driving a ClientConnection, every wait bounded."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.conn = ClientConnection()

    def close(self) -> None:
        self.sock.close()

    def send(self, item: object) -> None:
        self.sock.sendall(self.conn.send(item))  # type: ignore[arg-type]

    def until(self, done: type | None = None, tag: str | None = None) -> list[Response]:
        """Responses up to a tagged one for ``tag``, or the first of type ``done``."""
        got: list[Response] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                data = self.sock.recv(65536)
                self.conn.receive_data(data)
                continue
            if ev is CLOSED:
                return got
            assert not isinstance(ev, Sentinel)
            got.append(ev)
            if done is not None and isinstance(ev, done):
                return got
            if tag is not None and isinstance(ev, TaggedResponse) and ev.tag == tag:
                return got
        raise AssertionError(f"no answer in time, got {got}")


def greeted(addr: tuple[str, int]) -> Session:
    s = Session(addr)
    [greeting] = s.until(Greeting)
    assert isinstance(greeting, Greeting) and greeting.status is Status.OK
    assert greeting.code is not None and greeting.code.name == "CAPABILITY"
    assert s.conn.has_capability("IMAP4rev1") and s.conn.has_capability("AUTH=PLAIN")
    return s


def test_greeting_capability_id_and_failed_login(dovecot: tuple[str, int]) -> None:
    s = greeted(dovecot)
    try:
        tag = s.conn.new_tag()
        s.send(Capability(tag))
        caps, ok = s.until(tag=tag)
        assert isinstance(caps, CapabilityResponse) and "IMAP4rev1" in caps.capabilities
        assert isinstance(ok, TaggedResponse) and ok.status is Status.OK

        tag = s.conn.new_tag()
        s.send(Id(tag, originating_id("192.0.2.9", 40000, "127.0.0.1", 143, "t-1")))
        idr, ok = s.until(tag=tag)
        assert isinstance(idr, IdResponse) and idr.params is not None
        assert dict(idr.params).get("name") == "Dovecot"
        assert isinstance(ok, TaggedResponse) and ok.status is Status.OK

        tag = s.conn.new_tag()
        s.send(Login(tag, "alice", b"wrong"))
        [no] = s.until(tag=tag)
        assert isinstance(no, TaggedResponse) and no.status is Status.NO
        assert no.code is not None and no.code.name == "AUTHENTICATIONFAILED"
    finally:
        s.close()


def test_login_ok_select_logout(dovecot: tuple[str, int]) -> None:
    s = greeted(dovecot)
    try:
        tag = s.conn.new_tag()
        s.send(Login(tag, "alice", b"s3cret"))
        [ok] = s.until(tag=tag)
        assert isinstance(ok, TaggedResponse) and ok.status is Status.OK
        assert ok.code is not None and ok.code.name == "CAPABILITY"
        assert s.conn.has_capability("IDLE")  # post-login capabilities were learnt

        tag = s.conn.new_tag()
        s.send(Command(tag, "SELECT", (Quoted(b"INBOX"),)))
        got = s.until(tag=tag)
        names = {r.name for r in got if isinstance(r, UntaggedData)}
        assert {"FLAGS", "EXISTS"} <= names
        codes = {r.code.name for r in got if isinstance(r, UntaggedStatus) and r.code}
        assert {"UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"} <= codes
        assert isinstance(got[-1], TaggedResponse) and got[-1].status is Status.OK

        tag = s.conn.new_tag()
        s.send(Logout(tag))
        got = s.until(tag=tag)
        assert isinstance(got[0], UntaggedStatus) and got[0].status is Status.BYE
        assert isinstance(got[-1], TaggedResponse) and got[-1].status is Status.OK
    finally:
        s.close()


def test_literal_password_sync_and_non_sync(dovecot: tuple[str, int]) -> None:
    password = USERS["bob"].encode()
    for forget_literal_plus in (False, True):
        s = greeted(dovecot)
        try:
            if forget_literal_plus:
                s.conn.capabilities = ("IMAP4rev1",)  # force {n} and the "+" handshake
            tag = s.conn.new_tag()
            s.send(Login(tag, "bob", password))
            if forget_literal_plus:
                assert s.conn.awaiting_continuation
                [cont] = s.until(ContinuationRequest)
                assert isinstance(cont, ContinuationRequest)
                s.send(ContinueCommand())
            [ok] = s.until(tag=tag)
            assert isinstance(ok, TaggedResponse) and ok.status is Status.OK, ok
        finally:
            s.close()


def test_authenticate_plain_with_and_without_sasl_ir(dovecot: tuple[str, int]) -> None:
    plain = encode_plain(Credentials("alice", b"s3cret"))
    s = greeted(dovecot)
    try:
        assert s.conn.has_capability("SASL-IR")
        tag = s.conn.new_tag()
        s.send(Authenticate(tag, "PLAIN", plain))
        [ok] = s.until(tag=tag)
        assert isinstance(ok, TaggedResponse) and ok.status is Status.OK
    finally:
        s.close()
    s = greeted(dovecot)
    try:
        tag = s.conn.new_tag()
        s.send(Authenticate(tag, "PLAIN"))
        [cont] = s.until(ContinuationRequest)
        assert isinstance(cont, ContinuationRequest) and cont.data() == b""
        s.send(AuthenticateResponse(encode_plain(Credentials("alice", b"nope"))))
        [no] = s.until(tag=tag)
        assert isinstance(no, TaggedResponse) and no.status is Status.NO
        assert no.code is not None and no.code.name == "AUTHENTICATIONFAILED"
    finally:
        s.close()

