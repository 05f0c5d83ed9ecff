"""The failover peer link's wire protocol, sans-I/O: framing, authentication, messages.

Theory of operation
-------------------
One TCP connection between the two DHCP servers carries JSON messages in
frames::

    frame   = length(4 octets, big endian) mac(32 octets) payload(JSON object)

``length`` counts mac and payload; a frame over :data:`MAX_FRAME` is an error.

Authentication (HMAC-SHA256 over the shared secret of ``secret_file``), a
challenge and response per connection, then a MAC per message:

1. Each side sends ``{"t": "hello", "node": NAME, "nonce": HEX}`` (32 random
   octets), its mac HMAC(secret, "hello" | payload).
2. On the peer's hello, each side answers ``{"t": "auth", "proof": HEX}`` with
   proof = HMAC(secret, "auth" | peer's nonce | own nonce | own name): only a
   holder of the secret can answer this connection's fresh challenge.
3. Both then derive the session key HMAC(secret, "session" | the two nonces in
   node-name order). Every later frame's mac is HMAC(key, sender name |
   sequence number (8 octets) | payload), sequence numbers counting from 0 in
   each direction: a frame altered, replayed, reordered or moved to another
   connection fails its check. Any failure ends the connection
   (:class:`PeerProtocolError`).

Messages after authentication (``t`` is the type):

- ``upd`` {seq, leases}: lease records that changed; answered by ``ack`` {seq}.
- ``sync`` {leases}: part of a bulk resync, ``sync-done`` ends it; the
  receiver answers ``synced`` once it has merged everything.
- ``ping`` {at} / ``pong`` {at}: liveness, and the round trip (replication lag).
- ``state`` {state}: the sender's failover state, for ``/status``.

A lease travels as ``[address, client, hwaddr hex, state, starts, expires,
hostname]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final

from dhcp.store import Lease, LeaseState

MAX_FRAME: Final = 4 << 20
MAC_SIZE: Final = 32
NONCE_SIZE: Final = 32
_LENGTH = struct.Struct("!I")


class PeerProtocolError(Exception):
    """The peer broke the protocol (bad frame, bad MAC, bad proof); drop the connection."""


def lease_to_wire(lease: Lease) -> list[Any]:
    return [
        str(lease.address),
        lease.client,
        lease.hwaddr.hex(),
        lease.state.value,
        lease.starts,
        lease.expires,
        lease.hostname,
    ]


def lease_from_wire(item: object) -> Lease:
    try:
        assert isinstance(item, list) and len(item) == 7
        address, client, hwaddr, state, starts, expires, hostname = item
        assert isinstance(client, str) and isinstance(hwaddr, str)
        assert isinstance(starts, int | float) and isinstance(expires, int | float)
        assert hostname is None or isinstance(hostname, str)
        return Lease(
            IPv4Address(address),
            client,
            bytes.fromhex(hwaddr),
            LeaseState(state),
            float(starts),
            float(expires),
            hostname,
        )
    except (AssertionError, ValueError, TypeError) as exc:
        raise PeerProtocolError(f"malformed lease record {item!r:.80}") from exc


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Authenticated:
    peer: str


@dataclass(frozen=True, slots=True)
class Message:
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body.get("t", ""))


PeerEvent = Authenticated | Message


class PeerConnection:
    """One end of one connection: bytes in, events out; messages in, bytes out."""

    def __init__(self, node: str, peer: str, secret: bytes, nonce: bytes) -> None:
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce must be 32 octets")
        self.node = node
        self.peer = peer
        self.secret = secret
        self.nonce = nonce
        self.peer_nonce: bytes | None = None
        self.authenticated = False
        self._key: bytes | None = None
        self._sent_auth = False
        self._buffer = bytearray()
        self._send_seq = 0
        self._recv_seq = 0

    # -- sending -----------------------------------------------------------

    @staticmethod
    def _frame(mac: bytes, payload: bytes) -> bytes:
        return _LENGTH.pack(len(mac) + len(payload)) + mac + payload

    def hello(self) -> bytes:
        payload = json.dumps({"t": "hello", "node": self.node, "nonce": self.nonce.hex()}).encode()
        return self._frame(_mac(self.secret, b"hello", payload), payload)

    def send(self, body: dict[str, Any]) -> bytes:
        if self._key is None:
            raise RuntimeError("peer connection is not authenticated yet")
        payload = json.dumps(body, separators=(",", ":")).encode()
        mac = _mac(self._key, self.node.encode(), self._send_seq.to_bytes(8, "big"), payload)
        self._send_seq += 1
        return self._frame(mac, payload)

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes) -> tuple[list[PeerEvent], bytes]:
        """Feed received bytes; return the events and any bytes to send back."""
        self._buffer += data
        events: list[PeerEvent] = []
        out = bytearray()
        for mac, payload in self._frames():
            event, reply = self._handle(mac, payload)
            if event is not None:
                events.append(event)
            out += reply
        return events, bytes(out)

    def _frames(self) -> Iterator[tuple[bytes, bytes]]:
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length < MAC_SIZE or length > MAX_FRAME:
                raise PeerProtocolError(f"frame length {length} out of range")
            if len(self._buffer) < _LENGTH.size + length:
                return
            frame = bytes(self._buffer[_LENGTH.size : _LENGTH.size + length])
            del self._buffer[: _LENGTH.size + length]
            yield frame[:MAC_SIZE], frame[MAC_SIZE:]

    @staticmethod
    def _json(payload: bytes) -> dict[str, Any]:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PeerProtocolError("frame is not JSON") from exc
        if not isinstance(body, dict):
            raise PeerProtocolError("frame is not a JSON object")
        return body

    def _handle(self, mac: bytes, payload: bytes) -> tuple[PeerEvent | None, bytes]:
        if self.peer_nonce is None:
            if not hmac.compare_digest(mac, _mac(self.secret, b"hello", payload)):
                raise PeerProtocolError("hello not signed with our secret")
            body = self._json(payload)
            if body.get("t") != "hello" or body.get("node") != self.peer:
                raise PeerProtocolError(f"expected hello from {self.peer}, got {body!r:.80}")
            try:
                nonce = bytes.fromhex(str(body.get("nonce")))
            except ValueError:
                nonce = b""
            if len(nonce) != NONCE_SIZE or nonce == self.nonce:
                raise PeerProtocolError("bad nonce in hello")
            self.peer_nonce = nonce
            proof = _mac(self.secret, b"auth", nonce, self.nonce, self.node.encode())
            body = {"t": "auth", "proof": proof.hex()}
            auth = json.dumps(body).encode()
            self._sent_auth = True
            return None, self._frame(_mac(self.secret, b"auth", auth), auth)
        if not self.authenticated:
            if not hmac.compare_digest(mac, _mac(self.secret, b"auth", payload)):
                raise PeerProtocolError("auth frame not signed with our secret")
            body = self._json(payload)
            expected = _mac(
                self.secret, b"auth", self.nonce, self.peer_nonce, self.peer.encode()
            )
            if body.get("t") != "auth" or not hmac.compare_digest(
                str(body.get("proof", "")), expected.hex()
            ):
                raise PeerProtocolError("peer failed the challenge")
            first, second = sorted(
                [(self.node, self.nonce), (self.peer, self.peer_nonce)], key=lambda x: x[0]
            )
            self._key = _mac(self.secret, b"session", first[1], second[1])
            self.authenticated = True
            return Authenticated(self.peer), b""
        assert self._key is not None
        expected = _mac(self._key, self.peer.encode(), self._recv_seq.to_bytes(8, "big"), payload)
        if not hmac.compare_digest(mac, expected):
            raise PeerProtocolError(f"bad MAC on message {self._recv_seq}")
        self._recv_seq += 1
        return Message(self._json(payload)), b""
