"""The VRRPv3 state machine through RFC 5798 §6 edge cases, on a fake clock."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.vip.machine import (
    TRANSITIONS,
    AddAddresses,
    AdvertCause,
    Cause,
    Discarded,
    Relisten,
    RemoveAddresses,
    Resign,
    SendAdvert,
    SendGratuitous,
    SetPriority,
    SetReady,
    Shutdown,
    Startup,
    State,
    StateChanged,
    Unresign,
    VirtualRouter,
    master_down_interval,
    skew_time,
)
from imapha.vip.packet import DropReason

from .harness import VIPS, Harness, addr, config


def started(priority: int = 100, *, ready: bool = True, **kw: Any) -> Harness:
    h = Harness(VirtualRouter(config(priority, **kw), ready=ready))
    h.feed(Startup(0.0))
    return h


def kinds(actions: Sequence[object]) -> list[type]:
    return [type(a) for a in actions]


def test_timings_are_rfc5798_6_1() -> None:
    assert skew_time(100, 100) == pytest.approx(156 / 256)
    assert master_down_interval(100, 100) == pytest.approx(3 + 156 / 256)
    assert master_down_interval(254, 10) == pytest.approx(0.3 + 2 * 10 / 256 / 100)


def test_owner_starts_as_master_with_advert_addresses_and_garp() -> None:
    h = Harness(VirtualRouter(config(255)))
    actions = h.feed(Startup(0.0))
    assert h.state() is State.MASTER
    assert kinds(actions) == [StateChanged, SendAdvert, AddAddresses, SendGratuitous]
    assert actions[0] == StateChanged(State.INITIALIZE, State.MASTER, Cause.OWNER_STARTUP)
    assert isinstance(actions[1], SendAdvert) and actions[1].priority == 255
    assert h.router.next_deadline() == pytest.approx(1.0)


def test_non_owner_starts_as_backup_and_takes_over_after_master_down_with_skew() -> None:
    h = started(100)
    assert h.state() is State.BACKUP
    mdi = 3 + (256 - 100) / 256
    assert h.router.next_deadline() == pytest.approx(mdi)
    assert h.run_until(mdi - 0.001) == []
    actions = h.run_until(mdi)
    assert StateChanged(State.BACKUP, State.MASTER, Cause.MASTER_DOWN) in actions
    assert AddAddresses(VIPS) in actions and SendGratuitous(VIPS) in actions


def test_adverts_from_a_live_master_hold_the_backup() -> None:
    h = started(100)
    for i in range(1, 20):
        h.run_until(float(i))
        h.hear(200)
    assert h.state() is State.BACKUP
    h.run_until(19 + 3 + 156 / 256 - 0.01)
    assert h.state() is State.BACKUP
    h.run_until(19 + 3 + 156 / 256)
    assert h.state() is State.MASTER


def test_priority_zero_from_master_makes_backup_wait_only_skew_time() -> None:
    h = started(200)
    h.run_until(1.0)
    h.hear(250)
    h.run_until(1.5)
    h.hear(0)
    assert h.router.next_deadline() == pytest.approx(1.5 + 56 / 256)
    h.run_until(1.5 + 56 / 256)
    assert h.state() is State.MASTER


def test_backup_adopts_the_masters_interval() -> None:
    h = started(100)
    h.hear(200, interval_cs=10)
    assert h.router.master_adver_interval_cs == 10
    assert h.router.next_deadline() == pytest.approx(0.3 + 156 / 256 * 0.1)
    h.run_until(3.0)
    assert h.state() is State.MASTER
    # As master it sends its own configured interval, not the adopted one.
    periodic = [a for _, a in h.adverts() if a.cause is AdvertCause.PERIODIC]
    assert periodic and all(a.interval_cs == 100 for a in periodic)


@pytest.mark.parametrize("preempt", [True, False])
def test_preemption_of_a_lower_priority_master(preempt: bool) -> None:
    h = started(200, preempt=preempt)
    for i in range(10):
        h.run_until(i * 1.0)
        if h.state() is State.BACKUP:
            h.hear(100)
    assert h.state() is (State.MASTER if preempt else State.BACKUP)
    took = [t for t, a in h.log if isinstance(a, StateChanged) and a.new is State.MASTER]
    assert took == ([pytest.approx(master_down_interval(200, 100))] if preempt else [])


def test_preempt_delay_holds_preemption_off_after_startup() -> None:
    h = started(200, preempt_delay=10.0)
    for i in range(30):
        h.run_until(i * 1.0)
        if h.state() is State.BACKUP:
            h.hear(100)
    took = [t for t, a in h.log if isinstance(a, StateChanged) and a.new is State.MASTER]
    # Lower adverts are accepted until t=10; the first one discarded after that is at
    # t=10, so Master_Down fires one Master_Down_Interval after the t=9 advert.
    assert took == [pytest.approx(9 + master_down_interval(200, 100))]


def test_owner_preempts_even_with_preempt_off() -> None:
    h = started(255, preempt=False, ready=False)  # not ready: starts as backup
    h.hear(100)
    h.feed(SetReady(0.0, True))
    h.run_until(0.5)
    h.hear(100)
    # The deadline was set while not ready, with the skew of priority 1.
    h.run_until(master_down_interval(1, 100))
    assert h.state() is State.MASTER


def test_master_yields_to_higher_priority_and_removes_addresses_at_once() -> None:
    h = started(100)
    h.run_until(5.0)
    assert h.state() is State.MASTER
    actions = h.hear(150, interval_cs=50)
    assert actions == [
        RemoveAddresses(VIPS),
        StateChanged(State.MASTER, State.BACKUP, Cause.PREEMPTED),
    ]
    assert h.router.master_adver_interval_cs == 50
    assert h.router.next_deadline() == pytest.approx(5 + master_down_interval(100, 50))


@pytest.mark.parametrize(("peer", "yields"), [(2, True), (0, False)])
def test_equal_priority_split_brain_higher_primary_address_wins(peer: int, yields: bool) -> None:
    h = started(100, me=1)
    h.run_until(5.0)
    actions = h.hear(100, src=peer)
    if yields:
        assert h.state() is State.BACKUP and RemoveAddresses(VIPS) in actions
    else:
        # A stale master: we stay, answer at once and re-announce the addresses.
        assert h.state() is State.MASTER
        assert kinds(actions) == [SendAdvert, SendGratuitous]
        assert isinstance(actions[0], SendAdvert) and actions[0].cause is AdvertCause.REPLY


def test_stale_master_replies_are_rate_limited_and_never_shift_the_clock() -> None:
    h = started(200)
    h.run_until(4.0)
    assert h.state() is State.MASTER
    first = h.router.next_deadline()
    assert first is not None
    replies = 0
    for i in range(3000):  # a flood: one lower advert per millisecond for 3 s
        h.run_until(4.0 + i / 1000)
        replies += sum(isinstance(a, SendAdvert) and a.cause is AdvertCause.REPLY
                       for a in h.hear(100))
    assert replies == 3  # one per Advertisement_Interval
    periodic = [t for t, a in h.adverts() if a.cause is AdvertCause.PERIODIC]
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(periodic)}
    assert gaps == {1.0}
    assert periodic[0] == pytest.approx(first) and len(periodic) == 3


def test_priority_zero_to_master_gets_an_immediate_reply() -> None:
    h = started(200)
    h.run_until(4.0)
    actions = h.hear(0)
    assert len(actions) == 1 and isinstance(actions[0], SendAdvert)
    assert actions[0].priority == 200 and h.state() is State.MASTER


def test_shutdown_of_master_sends_priority_zero() -> None:
    h = started(100)
    h.run_until(4.0)
    actions = h.feed(Shutdown(4.0))
    assert isinstance(actions[0], SendAdvert) and actions[0].priority == 0
    assert RemoveAddresses(VIPS) in actions and h.state() is State.INITIALIZE
    assert h.router.next_deadline() is None


def test_drops_are_reported_with_their_reason() -> None:
    h = started(100)
    (d,) = h.hear(200, vrid=52)
    assert isinstance(d, Discarded) and d.reason is DropReason.OTHER_VRID
    (d,) = h.hear(200, addresses=(addr(99),))
    assert isinstance(d, Discarded) and d.reason is DropReason.ADDRESS_MISMATCH
    (d,) = h.hear(200, src=1)
    assert isinstance(d, Discarded) and d.reason is DropReason.OWN_PACKET
    # None of them counted as a live master.
    h.run_until(master_down_interval(100, 100))
    assert h.state() is State.MASTER


def test_resign_sends_zero_goes_backup_and_stays_until_unresign() -> None:
    h = started(200)
    h.run_until(4.0)
    actions = h.feed(Resign(4.0))
    assert isinstance(actions[0], SendAdvert) and actions[0].priority == 0
    assert StateChanged(State.MASTER, State.BACKUP, Cause.RESIGN) in actions
    h.run_until(60.0)  # nobody else: still we stay out
    assert h.state() is State.BACKUP
    h.feed(Unresign(60.0))  # no master heard: take over at once
    assert h.state() is State.MASTER


def test_resigned_backup_does_not_preempt_and_undrain_preempts_after_delay() -> None:
    h = started(200, preempt_delay=2.0)
    h.feed(Resign(0.0))
    for i in range(1, 40):
        h.run_until(i * 0.5)
        if h.state() is State.BACKUP:
            h.hear(100)
        if i == 20:
            h.feed(Unresign(h.now))
    took = [t for t, a in h.log if isinstance(a, StateChanged) and a.new is State.MASTER]
    assert len(took) == 1 and took[0] > 10.0 + 2.0


def test_not_ready_never_preempts_a_live_lower_master() -> None:
    h = started(200, ready=False)
    for i in range(60):
        h.run_until(i * 1.0)
        h.hear(100)
    assert h.state() is State.BACKUP
    h.feed(SetReady(h.now, True))
    h.run_until(h.now + 0.5)
    h.hear(100)
    h.run_until(h.now + master_down_interval(1, 100))
    assert h.state() is State.MASTER


def test_not_ready_master_hands_over_with_priority_zero() -> None:
    h = started(200)
    h.run_until(4.0)
    actions = h.feed(SetReady(4.0, False))
    assert isinstance(actions[0], SendAdvert) and actions[0].priority == 0
    assert StateChanged(State.MASTER, State.BACKUP, Cause.NOT_READY) in actions


def test_not_ready_and_no_master_stays_out_by_default_then_claims_on_ready() -> None:
    h = started(200, ready=False)
    h.run_until(30.0)
    assert h.state() is State.BACKUP
    actions = h.feed(SetReady(30.0, True))
    assert StateChanged(State.BACKUP, State.MASTER, Cause.NO_MASTER) in actions


def test_takeover_when_not_ready_advertises_priority_one() -> None:
    h = started(200, ready=False, takeover_when_not_ready=True)
    h.run_until(master_down_interval(1, 100))
    assert h.state() is State.MASTER
    assert {a.priority for _, a in h.adverts()} == {1}
    h.hear(50)  # any real master beats us
    assert h.state() is State.BACKUP


def test_set_priority_changes_what_the_master_advertises() -> None:
    h = started(200)
    h.run_until(4.0)
    h.feed(SetPriority(4.0, 90))
    h.run_until(6.0)
    assert h.adverts()[-1][1].priority == 90
    with pytest.raises(ValueError, match="outside"):
        h.feed(SetPriority(6.0, 0))


def test_transition_table_is_the_only_way_to_move() -> None:
    targets = {new for new in TRANSITIONS.values()}
    assert targets == set(State)
    h = started(100)
    with pytest.raises(AssertionError, match="no transition"):
        h.router._move(Cause.PREEMPTED, 0.0, [])


event_kinds = st.one_of(
    st.tuples(st.just("advert"), st.integers(0, 255), st.integers(0, 4), st.integers(1, 300),
              st.booleans(), st.booleans()),
    st.tuples(st.just("ready"), st.booleans()),
    st.tuples(st.just("drain"), st.booleans()),
    st.tuples(st.just("priority"), st.integers(1, 255)),
    st.tuples(st.just("shutdown")),
    st.tuples(st.just("startup")),
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.tuples(st.integers(1, 255), st.booleans(), st.booleans(), st.booleans()),
    script=st.lists(st.tuples(st.floats(0, 3, allow_nan=False), event_kinds), max_size=60),
)
def test_any_input_keeps_the_advert_clock_and_the_address_bookkeeping(
    start: tuple[int, bool, bool, bool], script: list[tuple[float, tuple[Any, ...]]],
) -> None:
    prio, preempt, ready, takeover = start
    h = Harness(VirtualRouter(
        config(prio, preempt=preempt, takeover_when_not_ready=takeover, interval_cs=50),
        ready=ready))
    h.feed(Startup(0.0))
    for dt, ev in script:
        h.run_until(h.now + dt)
        match ev:
            case ("advert", p, src, interval, wrong_vrid, wrong_addrs):
                h.hear(p, src=src, interval_cs=interval, vrid=52 if wrong_vrid else 51,
                       addresses=(addr(99),) if wrong_addrs else VIPS)
            case ("ready", flag):
                h.feed(SetReady(h.now, flag))
            case ("drain", flag):
                h.feed(Resign(h.now) if flag else Unresign(h.now))
            case ("priority", p):
                h.feed(SetPriority(h.now, p))
            case ("shutdown",):
                h.feed(Shutdown(h.now))
            case ("startup",):
                h.feed(Startup(h.now))
    h.run_until(h.now + 5)
    held, last = False, None
    for t, a in h.log:
        if isinstance(a, AddAddresses):
            assert not held
            held = True
        elif isinstance(a, RemoveAddresses):
            assert held
            held = False
        elif isinstance(a, SendAdvert) and a.cause is AdvertCause.TAKEOVER:
            last = t
        elif isinstance(a, SendAdvert) and a.cause is AdvertCause.PERIODIC:
            assert last is not None and abs(t - last - 0.5) < 1e-9, (t, last)
            last = t
        elif isinstance(a, StateChanged) and a.old is State.MASTER:
            last = None
        if isinstance(a, SendAdvert) and a.cause is not AdvertCause.RESIGN:
            assert a.priority >= 1
    assert held == (h.state() is State.MASTER)
    if h.router.resigned:
        assert h.state() is not State.MASTER


def test_relisten_forgets_a_no_master_heard_while_deaf() -> None:
    # Not ready (link down) for 30 s: Master_Down fired unanswered, but we were deaf.
    h = started(200, ready=False)
    h.run_until(30.0)
    assert h.feed(Relisten(30.0)) == []
    assert h.feed(SetReady(30.0, True)) == []  # no instant claim after the link returns
    assert h.state() is State.BACKUP
    h.hear(100)  # the live master, heard now: we preempt it by the ordinary rule
    # (the timer was set while not ready, so with priority 1's skew)
    h.run_until(30.0 + master_down_interval(1, 100) - 0.01)
    assert h.state() is State.BACKUP
    h.run_until(30.0 + master_down_interval(1, 100) + 0.01)
    assert h.state() is State.MASTER
    # And with nobody there at all, we take over one Master_Down_Interval later.
    h2 = started(200, ready=False)
    h2.run_until(30.0)
    h2.feed(Relisten(30.0))
    h2.feed(SetReady(30.0, True))
    h2.run_until(30.0 + master_down_interval(1, 100) + 0.01)
    assert h2.state() is State.MASTER
