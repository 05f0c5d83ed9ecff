"""Connection limits and the failed-login penalty."""

from __future__ import annotations

from imapha.proxy.limits import AuthPenalty, ConnectionLimiter, Refusal, client_key


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::5") != client_key("2001:db8:1:3::5")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("not-an-ip") == "not-an-ip"


def test_per_ip_and_total_limits() -> None:
    lim = ConnectionLimiter(max_total=3, max_per_ip=2)
    assert lim.admit("192.0.2.1") is None
    assert lim.admit("192.0.2.1") is None
    assert lim.admit("192.0.2.1") is Refusal.PER_IP
    assert lim.admit("192.0.2.2") is None
    assert lim.admit("192.0.2.3") is Refusal.TOTAL
    lim.release("192.0.2.1")
    assert lim.count("192.0.2.1") == 1
    assert lim.admit("192.0.2.3") is None
    assert lim.total == 3


def test_release_of_unknown_address_changes_nothing() -> None:
    lim = ConnectionLimiter(max_total=1, max_per_ip=1)
    lim.release("192.0.2.9")
    assert lim.total == 0
    assert lim.admit("192.0.2.9") is None


def test_penalty_grows_caps_and_clears() -> None:
    p = AuthPenalty(penalty_max=15.0)
    ip = "198.51.100.4"
    assert p.delay(ip, 0.0) == 0.0
    delays = []
    for i in range(6):
        p.failed(ip, float(i))
        delays.append(p.delay(ip, float(i)))
    assert delays == [2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert p.delay("198.51.100.5", 6.0) == 0.0  # other addresses unaffected
    p.succeeded(ip)
    assert p.delay(ip, 7.0) == 0.0


def test_penalty_forgets_quiet_addresses_and_stays_bounded() -> None:
    p = AuthPenalty(penalty_max=15.0, forget_after=60.0, max_tracked=100)
    p.failed("198.51.100.4", 0.0)
    assert p.delay("198.51.100.4", 61.0) == 0.0
    for i in range(250):
        p.failed(f"203.0.113.{i % 250}", 100.0 + i)
        p.failed(f"2001:db8:{i:x}::1", 100.0 + i)
    assert len(p) == 100


def test_zero_penalty_max_disables_the_penalty() -> None:
    p = AuthPenalty(penalty_max=0.0)
    p.failed("192.0.2.1", 0.0)
    assert p.delay("192.0.2.1", 0.0) == 0.0
