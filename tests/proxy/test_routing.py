"""Rendezvous routing: agreement, minimal movement, weights, pins, user map."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.proxy.routing import (
    Candidate,
    Router,
    UserMapError,
    parse_user_map,
    preference,
)

BACKENDS = [Candidate("be1"), Candidate("be2"), Candidate("be3")]
USERS = [f"user{i}@cs.example.org" for i in range(3000)]


def _all_up(_: str) -> bool:
    return True


@given(st.text(min_size=1, max_size=40))
def test_every_proxy_agrees(user: str) -> None:
    # Two routers built independently (two proxies) with backends listed in
    # different orders give the same answer.
    a = Router(BACKENDS, _all_up)
    b = Router(list(reversed(BACKENDS)), _all_up)
    assert a.route(user) == b.route(user)


def test_case_and_blanks_do_not_change_the_backend() -> None:
    r = Router(BACKENDS, _all_up)
    assert r.route("Alice@CS.example.org ")[0] == r.route("alice@cs.example.org")[0]


def test_losing_a_backend_moves_only_its_users() -> None:
    before = {u: Router(BACKENDS, _all_up).route(u)[0] for u in USERS}
    down = Router(BACKENDS, lambda name: name != "be2")
    for user, first in before.items():
        now = down.route(user)[0]
        if first != "be2":
            assert now == first
        else:
            # The fallback is the user's own second choice, the same everywhere.
            assert now == preference(user, BACKENDS)[1]


def test_users_spread_by_weight() -> None:
    weighted = [Candidate("be1", 1.0), Candidate("be2", 3.0)]
    counts = Counter(Router(weighted, _all_up).route(u)[0] for u in USERS)
    share = counts["be2"] / len(USERS)
    assert 0.70 < share < 0.80, counts


def test_pinned_user_goes_to_its_backend_then_falls_back() -> None:
    user = next(u for u in USERS if preference(u, BACKENDS)[0] != "be3")
    r = Router(BACKENDS, _all_up, pinned={user: "be3"})
    assert r.route(user)[0] == "be3"
    r_down = Router(BACKENDS, lambda n: n != "be3", pinned={user: "be3"})
    assert r_down.route(user)[0] == preference(user, BACKENDS)[0]


def test_limit_and_no_usable_backend() -> None:
    r = Router(BACKENDS, _all_up)
    assert len(r.route("bob", limit=2)) == 2
    assert Router(BACKENDS, lambda _: False).route("bob") == []


def test_router_rejects_bad_setups() -> None:
    with pytest.raises(ValueError, match="unique"):
        Router([Candidate("x"), Candidate("x")], _all_up)
    with pytest.raises(ValueError, match="positive"):
        Router([Candidate("x", 0)], _all_up)
    with pytest.raises(ValueError, match="unknown backends: nope"):
        Router(BACKENDS, _all_up, pinned={"a": "nope"})


def test_user_map_file(tmp_path: Path) -> None:
    path = tmp_path / "users.map"
    path.write_text("# pinned users\nAlice be1\n\nbob   be2  # comment\n")
    assert parse_user_map(path) == {"alice": "be1", "bob": "be2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice\n", "users.map:1: expected 'user backend'"),
        ("alice be1\nbob be1 extra\n", "users.map:2: expected 'user backend'"),
        ("alice be1\nALICE be2\n", "users.map:2: user 'ALICE' already mapped on line 1"),
    ],
)
def test_user_map_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "users.map"
    path.write_text(text)
    with pytest.raises(UserMapError, match=message):
        parse_user_map(path)


def test_down_backends_are_a_last_resort_after_the_usable_ones() -> None:
    drained = {"be3"}
    r = Router(BACKENDS, lambda n: n == "be2", last_resort=lambda n: n not in drained)
    for user in USERS[:50]:
        order = r.route(user)
        assert order[0] == "be2"
        assert order[1:] == [n for n in preference(user, BACKENDS) if n == "be1"]
