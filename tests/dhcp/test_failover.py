"""The failover state machine and pool split (pure: no sockets, time passed in)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcp.failover import (
    _LOADB_TABLE,
    STARTUP_WAIT,
    Failover,
    IllegalTransition,
    Mode,
    State,
    loadb_hash,
    own_half,
)
from dhcp.network import Pool
from dhcp.store import FailoverRecord

POOL = Pool(IPv4Address("192.0.2.100"), IPv4Address("192.0.2.139"))
MCLT = 3600.0
T0 = 1_700_000_000.0


def state(f: Failover) -> State:
    """The state now (a function, so the type checker does not narrow across events)."""
    return f.state


def node(index: int = 0, *, mode: Mode = Mode.SPLIT, fresh: bool = False) -> Failover:
    return Failover(mode, index, (POOL,), MCLT, T0, fresh=fresh)


def test_the_rfc_3074_table_is_a_permutation() -> None:
    assert sorted(_LOADB_TABLE) == list(range(256))


def test_load_balancing_splits_clients_about_evenly() -> None:
    macs = [bytes.fromhex("525400") + n.to_bytes(3, "big") for n in range(2000)]
    first = sum(1 for mac in macs if loadb_hash(mac) < 128)
    assert 800 < first < 1200
    assert loadb_hash(macs[0]) == loadb_hash(bytes(macs[0]))  # deterministic


@given(st.integers(0, 2**32 - 2), st.integers(0, 5000))
def test_the_halves_cover_a_pool_and_never_overlap(first: int, size: int) -> None:
    last = min(first + size, 2**32 - 1)
    pool = Pool(IPv4Address(first), IPv4Address(last))
    (a0, a1), (b0, b1) = own_half(pool, 0), own_half(pool, 1)
    assert a0 == first and b1 == last and b0 == a1 + 1
    assert abs((a1 - a0 + 1) - (b1 - b0 + 1)) <= 1


def test_each_address_is_owned_by_exactly_one_node() -> None:
    a, b = node(0), node(1)
    for address in POOL:
        assert a.owns(address) != b.owns(address)


def test_startup_serves_soon_only_if_the_peer_is_known_down() -> None:
    f = node()
    f.peer_unknown()
    f.tick(T0 + 10 * STARTUP_WAIT)  # unreachable: it may be serving our half
    assert state(f) is State.STARTUP and not f.serving
    f.tick(T0 + MCLT)
    assert state(f) is State.INTERRUPTED


def test_startup_waits_for_the_peer_then_serves_under_interrupted_rules() -> None:
    f = node()
    assert state(f) is State.STARTUP and not f.serving
    f.peer_refused(T0 + 0.1, was_normal=False)  # its daemon is not running
    f.tick(T0 + STARTUP_WAIT - 0.1)
    assert state(f) is State.STARTUP
    f.tick(T0 + STARTUP_WAIT)
    assert state(f) is State.INTERRUPTED and f.serving
    assert f.lease_cap() == int(MCLT)
    assert [a for a in POOL if f.allows(a, "c")] == [a for a in POOL if f.owns(a)]


def test_a_fresh_node_serves_only_after_a_resync() -> None:
    f = node(fresh=True)
    assert state(f) is State.RECOVER and not f.serving
    f.link_up(T0 + 1)
    assert state(f) is State.SYNCING and not f.serving  # its store may be missing leases
    f.synced(T0 + 2)
    assert state(f) is State.NORMAL and f.serving and f.lease_cap() is None


def test_a_node_with_leases_serves_once_the_peers_records_arrived() -> None:
    f = node()
    f.link_up(T0)
    assert state(f) is State.SYNCING and not f.serving  # the peer may have used our half
    f.sync_received = True
    assert f.serving and f.lease_cap() == int(MCLT)
    assert [a for a in POOL if f.allows(a, "c")] == [a for a in POOL if f.owns(a)]


def _normal(f: Failover) -> Failover:
    f.link_up(T0)
    f.synced(T0)
    return f


def test_split_normal_answers_by_hash_bucket_or_when_addressed() -> None:
    a, b = _normal(node(0)), _normal(node(1))
    for n in range(50):
        client = bytes([n]) * 6
        assert a.answers(client, False) != b.answers(client, False)
        assert a.answers(client, True) and b.answers(client, True)
        assert a.answers(client, False, secs=3) and b.answers(client, False, secs=3)


def test_hot_standby_only_the_vip_master_answers_and_normal_uses_the_whole_pool() -> None:
    f = _normal(node(1, mode=Mode.HOT_STANDBY))
    assert not f.answers(b"\x01" * 6, True)
    f.vip_master = True
    assert f.answers(b"\x01" * 6, False)
    assert all(f.allows(a, "c") for a in POOL)
    f.link_lost(T0 + 5)
    assert not all(f.allows(a, "c") for a in POOL)  # own half while the peer is unknown


def test_peer_dead_straight_from_normal_gives_its_half_at_once() -> None:
    f = _normal(node())
    f.link_lost(T0 + 1)
    assert state(f) is State.INTERRUPTED
    f.peer_refused(T0 + 1.2, was_normal=True)
    assert state(f) is State.PARTNER_DOWN
    assert all(f.allows(a, "c") for a in POOL) and f.lease_cap() is None


def test_peer_known_down_after_an_interruption_waits_mclt() -> None:
    f = node()
    f.tick(T0 + MCLT)
    f.peer_refused(T0 + MCLT + 10, was_normal=False)
    f.tick(T0 + 10 + 2 * MCLT - 1)
    assert state(f) is State.INTERRUPTED
    f.tick(T0 + 10 + 2 * MCLT)
    assert state(f) is State.PARTNER_DOWN


def test_an_unreachable_peer_never_becomes_partner_down_by_itself() -> None:
    f = _normal(node())
    f.link_lost(T0 + 1)
    f.peer_refused(T0 + 2, was_normal=False)
    f.peer_unknown()  # then a timeout: a partition, the peer may be serving
    f.tick(T0 + 10 * MCLT)
    assert state(f) is State.INTERRUPTED


def test_operator_partner_down_is_refused_while_the_peer_is_connected() -> None:
    f = _normal(node())
    with pytest.raises(IllegalTransition):
        f.partner_down(T0)
    f.link_lost(T0 + 1)
    f.partner_down(T0 + 2)
    assert state(f) is State.PARTNER_DOWN
    f.link_up(T0 + 3)
    assert state(f) is State.SYNCING


def test_two_interrupted_nodes_never_allow_the_same_address() -> None:
    a, b = _normal(node(0)), _normal(node(1))
    a.link_lost(T0 + 1)
    b.link_lost(T0 + 1)
    for address in POOL:
        assert not (a.allows(address, "x") and b.allows(address, "y"))


# -- the persisted state (the double fault) ------------------------------------------


def restarted(previous: FailoverRecord | None, *, shared: bool = False) -> Failover:
    return Failover(Mode.SPLIT, 0, (POOL,), MCLT, T0, fresh=False, previous=previous,
                    shared_store=shared)


def test_a_node_that_crashed_holds_until_its_peer_resyncs_or_the_operator() -> None:
    crashed = FailoverRecord("a", "normal", T0 - 100, "normal", T0 - 5, stopped=None)
    f = restarted(crashed)
    assert f.hold
    f.peer_refused(T0 + 0.1, was_normal=False)  # the peer's daemon is down too
    for later in (STARTUP_WAIT, MCLT, 10 * MCLT):  # no timeout serves it
        f.tick(T0 + later)
        assert state(f) is State.STARTUP and not f.serving
    f.link_up(T0 + 10 * MCLT + 1)  # the peer is back: its records first
    assert state(f) is State.SYNCING and not f.serving
    f.sync_received = True
    assert f.serving
    f.synced(T0 + 10 * MCLT + 2)
    assert state(f) is State.NORMAL

    operator = restarted(crashed)
    operator.partner_down(T0 + 1)
    assert state(operator) is State.PARTNER_DOWN and operator.serving


def test_a_clean_stop_within_mclt_serves_its_half_when_the_peer_is_down() -> None:
    clean = FailoverRecord("a", "normal", T0 - 100, "normal", T0 - 50, stopped=T0 - 50)
    f = restarted(clean)
    assert not f.hold
    f.peer_refused(T0 + 0.1, was_normal=False)
    f.tick(T0 + STARTUP_WAIT)
    assert state(f) is State.INTERRUPTED and f.serving
    assert [a for a in POOL if f.allows(a, "c")] == [a for a in POOL if f.owns(a)]
    # stopped for longer than MCLT: the peer may have been partner-down since
    assert restarted(FailoverRecord("a", "normal", T0 - 2 * MCLT, "normal", None,
                                    stopped=T0 - MCLT)).hold


def test_no_hold_with_a_shared_store_or_no_record() -> None:
    crashed = FailoverRecord("a", "partner-down", T0 - 100, "unknown", None)
    assert not restarted(crashed, shared=True).hold  # the peer's leases are in our store
    f = restarted(None)  # a store from before records were kept: as before
    assert not f.hold
    f.peer_refused(T0, was_normal=False)
    f.tick(T0 + STARTUP_WAIT)
    assert state(f) is State.INTERRUPTED


def test_the_record_says_what_to_persist() -> None:
    f = restarted(None)
    f.partner_down(T0 + 3)
    record = f.record("a", peer_state="unknown", peer_seen=T0, stopped=T0 + 9)
    assert record == FailoverRecord("a", "partner-down", T0 + 3, "unknown", T0, T0 + 9)
