"""The peer link's framing and authentication (pure: bytes in, events and bytes out)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcp.peerproto import (
    Authenticated,
    Message,
    PeerConnection,
    PeerEvent,
    PeerProtocolError,
    lease_from_wire,
    lease_to_wire,
)
from dhcp.store import Lease, LeaseState

SECRET = b"0123456789abcdef0123456789abcdef"


def pair(secret_b: bytes = SECRET) -> tuple[PeerConnection, PeerConnection]:
    return (PeerConnection("a", "b", SECRET, os.urandom(32)),
            PeerConnection("b", "a", secret_b, os.urandom(32)))


def handshake(a: PeerConnection, b: PeerConnection) -> tuple[list[PeerEvent], list[PeerEvent]]:
    ea, reply_a = a.receive_data(b.hello())
    eb, reply_b = b.receive_data(a.hello())
    ea2, rest_a = a.receive_data(reply_b)
    eb2, rest_b = b.receive_data(reply_a)
    assert rest_a == rest_b == b""
    return ea + ea2, eb + eb2


def test_both_sides_authenticate_and_exchange_messages() -> None:
    a, b = pair()
    ea, eb = handshake(a, b)
    assert ea == [Authenticated("b")] and eb == [Authenticated("a")]
    events, _ = b.receive_data(a.send({"t": "upd", "seq": 1}) + a.send({"t": "ping"}))
    assert events == [Message({"t": "upd", "seq": 1}), Message({"t": "ping"})]
    events, _ = a.receive_data(b.send({"t": "ack", "seq": 1}))
    assert events == [Message({"t": "ack", "seq": 1})]


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_frames_survive_any_split_into_segments(cuts: list[int]) -> None:
    a, b = pair()
    handshake(a, b)
    data = b"".join(a.send({"t": "sync", "n": n}) for n in range(5))
    got: list[PeerEvent] = []
    position = 0
    for cut in cuts:
        got += b.receive_data(data[position:position + cut])[0]
        position += cut
    got += b.receive_data(data[position:])[0]
    assert got == [Message({"t": "sync", "n": n}) for n in range(5)]


def test_a_peer_without_the_secret_is_refused() -> None:
    a, b = pair(secret_b=b"another secret, same length....!")
    with pytest.raises(PeerProtocolError):
        a.receive_data(b.hello())


def test_a_replayed_altered_or_reordered_message_ends_the_connection() -> None:
    a, b = pair()
    handshake(a, b)
    first, second = a.send({"t": "upd", "seq": 1}), a.send({"t": "upd", "seq": 2})
    with pytest.raises(PeerProtocolError):
        b.receive_data(second)  # reordered
    a, b = pair()
    handshake(a, b)
    first = a.send({"t": "upd", "seq": 1})
    b.receive_data(first)
    with pytest.raises(PeerProtocolError):
        b.receive_data(first)  # replayed
    a, b = pair()
    handshake(a, b)
    frame = bytearray(a.send({"t": "upd", "seq": 1}))
    frame[-3] ^= 1
    with pytest.raises(PeerProtocolError):
        b.receive_data(bytes(frame))  # altered


def test_a_message_from_another_connection_is_refused() -> None:
    a1, b1 = pair()
    handshake(a1, b1)
    a2, b2 = pair()
    handshake(a2, b2)
    with pytest.raises(PeerProtocolError):
        b2.receive_data(a1.send({"t": "upd"}))


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    _, b = pair()
    with pytest.raises(PeerProtocolError):
        b.receive_data((64 << 20).to_bytes(4, "big") + b"x" * 40)


def test_a_lease_crosses_the_wire_unchanged_and_junk_is_refused() -> None:
    lease = Lease(IPv4Address("192.0.2.9"), "id:01aa", b"\x02\x00\x00\x00\x00\x01",
                  LeaseState.BOUND, 1.5, 601.5, "host")
    assert lease_from_wire(lease_to_wire(lease)) == lease
    for junk in (None, [], ["x"] * 7, [*lease_to_wire(lease)[:3], "nonsense", 1, 2, None]):
        with pytest.raises(PeerProtocolError):
            lease_from_wire(junk)
