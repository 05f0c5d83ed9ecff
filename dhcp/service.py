"""``imapha dhcp``: the DHCP server daemon, its failover with the peer, control and metrics.

Theory of operation
-------------------
The service wires the pure parts together and owns all the I/O:

- :class:`dhcp.udp.Transport` hands batches of datagrams to :meth:`DhcpService.handle`.
  Each is decoded (a malformed one is counted by its ``DecodeReason`` and
  dropped: it never reaches the logic or the store), filtered by
  :class:`dhcp.failover.Failover` (does this node answer this client now?), and
  the batch goes through :meth:`dhcp.logic.Server.handle_batch`: one group commit,
  durable when it returns.
- The lease records the batch changed (commits, releases, declines) go to the
  peer (:meth:`dhcp.peer.PeerLink.replicate`) and **the replies are sent only
  when the peer has acknowledged them**; if it does not (link lost, no ack in
  time) the replies are dropped, the client retransmits, and the next answer is
  given under the interrupted rules. With no peer link the replies go at once.
- The failover state sets the logic's allocator (own half or whole pool) and
  lease cap (MCLT) for every batch.
- The peer link's bulk resync runs on every (re)connection: each side sends all
  its records and ``sync-done``; the receiver merges (:meth:`dhcp.store.LeaseStore.merge`)
  and answers ``synced``; both directions done = ``normal``.
- With ``--probe-timeout`` (:mod:`dhcp.probe`), an OFFER of an address the
  client does not hold waits for an ARP/ICMP probe; an answer quarantines the
  address (replicated to the peer) and the logic picks another.
- The failover state is persisted in the lease store (:class:`dhcp.store.FailoverRecord`)
  at start, on every change and at a clean stop; the last record decides
  whether a restarted node may serve without its peer (see :mod:`dhcp.failover`).
- The store is SQLite or PostgreSQL (``lease_db``, :func:`dhcp.config.open_store`).
- The registrations file is watched (watchdog); an edit is validated first and
  applied whole, or rejected with every problem logged (file, line, key) and
  the old set kept.
- Control verbs: ``GET /leases``, ``POST /lease`` {ip}, ``POST /partner-down``,
  ``POST /sync``, ``POST /vip`` {vip, state} (vipd, when this node's role for
  the DHCP VIP changes). ``/ready`` is false while the node must not serve
  (startup, recover, a fresh node's resync), so vipd will not give it the VIP.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from dhcp import metrics as m
from dhcp.actions import Commit, Decline, Handled, Ingress, Probe, Release, Reply, apply
from dhcp.config import DhcpConfigError, dhcp_nodes, open_store, peer_of, server_config
from dhcp.failover import Failover, IllegalTransition, Mode, State
from dhcp.logic import Server
from dhcp.options import DecodeError, MessageType
from dhcp.packet import ZERO, Packet, decode, encode
from dhcp.peer import PeerDown, PeerLink
from dhcp.peerproto import PeerProtocolError, lease_from_wire, lease_to_wire
from dhcp.probe import Prober
from dhcp.registrations import Registrations, load
from dhcp.store import Lease, LeaseConflict, LeaseState, LeaseStore
from dhcp.udp import Datagram, Transport, interface_addresses
from imapha.control import ControlError, JsonObject, Verb
from imapha.daemon import DaemonContext, ServiceBase
from imapha.filewatch import FileWatch

log = logging.getLogger(__name__)

TICK = 0.1
EXPIRE_EVERY = 30.0
METRICS_EVERY = 1.0
ADDRESSES_EVERY = 1.0
SYNC_CHUNK = 500
RELOAD_DEBOUNCE = 0.2


def type_label(kind: MessageType | int | None) -> str:
    """A message type as a metric label."""
    if kind is None:
        return "bootp"
    if isinstance(kind, MessageType):
        return kind.name.lower()
    return "unknown"


def lease_json(lease: Lease, now: float) -> JsonObject:
    return {
        "address": str(lease.address),
        "client": lease.client,
        "hwaddr": ":".join(f"{b:02x}" for b in lease.hwaddr),
        "state": lease.state.value,
        "starts": lease.starts,
        "expires": lease.expires,
        "hostname": lease.hostname,
        "active": lease.holds(now),
    }


class DhcpService(ServiceBase):
    def __init__(self, ctx: DaemonContext, *, probe_timeout: float | None = None) -> None:
        super().__init__(ctx)
        section = self.node_config.dhcp
        if section is None:
            raise DhcpConfigError(f"node {ctx.node} has no [dhcp] section")
        self.section = section
        self.reactor = ctx.reactor
        self.config = server_config(ctx.config, ctx.node)
        if probe_timeout is None:  # the config's [dhcp] probe_timeout, unless overridden
            probe_timeout = section.probe_timeout
        self.probe_timeout = probe_timeout
        if probe_timeout > 0:
            self.config = dataclasses.replace(self.config, probe=True)
        self.prober: Prober | None = None
        self.peer_node = peer_of(ctx.config, ctx.node)
        self.mode = Mode(section.mode)
        self.index = dhcp_nodes(ctx.config).index(ctx.node)
        self.pools = tuple(pool for subnet in self.config.subnets for pool in subnet.pools)
        self.store: LeaseStore | None = None
        self.server: Server | None = None
        self.failover: Failover | None = None
        self.peer: PeerLink | None = None
        self.transport: Transport | None = None
        self.addresses: dict[str, tuple[IPv4Interface, ...]] = {}
        self.peer_state = "unknown"  # connected / down / unreachable / unknown
        self.peer_failover = "unknown"
        self._sync_received = False
        self._sync_acked = False
        self._was_normal = False
        self._peer_said_bye = False
        self._peer_seen: float | None = None
        self._loops: list[LoopingCall] = []
        self._observer: FileWatch | None = None
        self.registrations_error: str = ""
        self.metrics = ctx.metrics
        self.received: collections.Counter[str] = collections.Counter()
        self.dropped: collections.Counter[str] = collections.Counter()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Deferred[None]:
        try:
            self._start()
        except (DhcpConfigError, OSError, RuntimeError) as exc:
            self._close()
            return defer.fail(exc)
        return defer.succeed(None)

    def _start(self) -> None:
        self.store = open_store(self.section.lease_db)
        fresh = next(iter(self.store.leases()), None) is None
        registrations = Registrations()
        if self.section.registrations is not None:
            result = load(self.section.registrations, self.config.subnets)
            for problem in (*result.errors, *result.warnings):
                log.warning("registrations: %s", problem)
            if result.registrations is None:
                raise DhcpConfigError(f"dhcp.registrations: {self.section.registrations} has "
                                      f"{len(result.errors)} error(s); see the log")
            registrations = result.registrations
        now = time.time()
        previous = self.store.load_failover(self.ctx.node)
        # the peer's record in our store: it writes to the same database (PostgreSQL)
        shared = self.peer_node is not None and (
            self.store.load_failover(self.peer_node.name) is not None)
        self.failover = Failover(self.mode, self.index, self.pools, self.section.mclt, now,
                                 fresh=fresh, alone=self.peer_node is None, previous=previous,
                                 shared_store=shared)
        if previous is not None:
            log.info("dhcp failover: last record %s since %.0f, %s", previous.state,
                     previous.since, "stopped cleanly" if previous.stopped is not None
                     else "no clean stop (crashed)")
        if self.failover.hold:
            log.warning("dhcp failover: this node did not stop cleanly (or stopped longer than "
                        "MCLT ago): the peer may have leased our half meanwhile, so it serves "
                        "only after the peer's resync or `imapha ctl dhcp partner-down`")
        self._save_failover()  # running: a crash from now on leaves no clean stop
        self.server = Server(self.config, self.store, registrations, allocator=self.failover)
        if self.peer_node is not None:
            self.peer = self._peer_link()
            self.peer.start()
        interfaces = list(self.section.interfaces) or [self.node_config.interface]
        self.transport = Transport(self.reactor, interfaces, self.handle)
        self._refresh_addresses()
        self.transport.start()
        if self.probe_timeout > 0:
            self.prober = Prober(self.reactor, interfaces, self.probe_timeout)
            self.prober.start()
        for interval, fn in ((TICK, self._tick), (EXPIRE_EVERY, self._guarded(self._expire)),
                             (METRICS_EVERY, self._guarded(self._update_metrics)),
                             (ADDRESSES_EVERY, self._refresh_addresses)):
            loop = LoopingCall(fn)
            loop.clock = self.reactor
            loop.start(interval, now=False).addErrback(
                lambda f: log.error("dhcp periodic task failed: %s", f.getTraceback()))
            self._loops.append(loop)
        self._watch_registrations()
        self._update_metrics()
        log.info("dhcp: %s mode, node %d of the pair, server id %s, failover %s, %d lease "
                 "record(s), %d registration(s), interfaces %s", self.mode.value, self.index,
                 self.config.server_id, self.failover.state.value,
                 sum(1 for _ in self.store.leases()), len(registrations), ", ".join(interfaces))

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        """A periodic store task that survives the store failing (a database restart)."""
        failing = False

        def run() -> None:
            nonlocal failing
            try:
                fn()
            except Exception as exc:
                if not failing:
                    log.error("dhcp: %s failed (the lease store?): %s", fn.__name__, exc)
                failing = True
                return
            if failing:
                log.warning("dhcp: %s works again", fn.__name__)
            failing = False

        return run

    def _peer_link(self) -> PeerLink:
        assert self.peer_node is not None and self.peer_node.dhcp is not None
        secret_file = self.section.secret_file
        if secret_file is None:
            raise DhcpConfigError("dhcp.secret_file: the peer link needs a shared secret")
        secret = Path(secret_file).read_bytes().strip()
        if len(secret) < 16:
            raise DhcpConfigError(f"dhcp.secret_file: {secret_file} holds under 16 octets")
        return PeerLink(
            self.reactor, self, node=self.ctx.node, peer=self.peer_node.name, secret=secret,
            listen=(str(self.node_config.address), self.section.peer_port),
            peer_address=(str(self.peer_node.address), self.peer_node.dhcp.peer_port),
        )

    def _save_failover(self, stopped: float | None = None) -> None:
        if self.store is None or self.failover is None:
            return
        record = self.failover.record(self.ctx.node, peer_state=self.peer_failover,
                                      peer_seen=self._peer_seen, stopped=stopped)
        try:
            self.store.save_failover(record)
        except Exception:  # the state machine goes on; the next change tries again
            log.exception("dhcp failover: cannot persist the state %s", record.state)

    def stop(self, deadline: float) -> Deferred[None]:
        self.peer_send({"t": "bye"})  # a planned stop: the peer must not take our half
        self._save_failover(stopped=time.time())
        stopped = self.peer.stop() if self.peer is not None else defer.succeed(None)
        self._close()
        return stopped

    def _close(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
        if self.transport is not None:
            self.transport.stop()
            self.transport = None
        if self.prober is not None:
            self.prober.stop()
            self.prober = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def is_ready(self) -> tuple[bool, str]:
        if self.failover is None:
            return False, "starting"
        if not self.failover.serving:
            return False, f"failover {self.failover.state.value}"
        return True, ""

    # -- the packet path ---------------------------------------------------

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        self.metrics.counter(m.PACKETS_DROPPED).labels(reason=reason).inc()

    def _answers(self, packet: Packet, datagram: Datagram) -> str | None:
        """None if this node answers ``packet`` now, else the drop reason."""
        failover = self.failover
        assert failover is not None
        if not failover.serving:
            return f"failover_{failover.state.name.lower()}"
        if self.mode is Mode.HOT_STANDBY and not failover.vip_master:
            return "standby"
        client_id = packet.options.client_id or packet.hwaddr
        # Addressed to this server: its identifier in the request, or a renewal unicast
        # to it. A relayed request is unicast to both servers: the hash decides.
        to_us = packet.options.server_id == self.config.server_id or (
            not datagram.broadcast and packet.giaddr == ZERO)
        if not failover.answers(client_id, to_us, packet.secs):
            return "peer_bucket"
        return None

    def handle(self, datagrams: Sequence[Datagram]) -> None:
        """One batch from the socket (see the module docstring)."""
        assert self.server is not None and self.store is not None and self.failover is not None
        now = time.time()
        requests: list[tuple[Packet, Ingress]] = []
        for datagram in datagrams:
            try:
                packet = decode(datagram.data)
            except DecodeError as exc:
                self._drop(exc.reason.value)
                continue
            label = type_label(packet.message_type)
            self.received[label] += 1
            self.metrics.counter(m.PACKETS_RECEIVED).labels(type=label).inc()
            reason = self._answers(packet, datagram)
            if reason is not None:
                self._drop(reason)
                continue
            ingress = Ingress(datagram.interface, self.addresses.get(datagram.interface, ()),
                              broadcast=datagram.broadcast)
            requests.append((packet, ingress))
        if not requests:
            return
        self.server.lease_cap = self.failover.lease_cap()
        started = time.perf_counter()
        try:
            handled = self.server.handle_batch(requests, now)
        except Exception:
            log.exception("dhcp: a batch of %d request(s) failed; nothing sent", len(requests))
            self._drop("internal_error")
            return
        self.metrics.histogram(m.COMMIT_SECONDS).observe(time.perf_counter() - started)
        replies, changed, probes = self._results(handled)
        for probe in probes:
            self._probe(probe)
        leases = [lease for lease in (self.store.get(a) for a in changed) if lease is not None]
        if leases and self.peer is not None and self.peer.connected:
            acked = self.peer.replicate(leases)
            acked.addCallbacks(lambda _: self._send(replies), self._unacked,
                               errbackArgs=(len(replies),))
        else:
            self._send(replies)

    def _results(
        self, handled: Iterable[Handled]
    ) -> tuple[list[Reply], list[IPv4Address], list[Probe]]:
        replies: list[Reply] = []
        probes: list[Probe] = []
        changed: dict[IPv4Address, None] = {}
        for item in handled:
            if item.conflict is not None:
                self.metrics.counter(m.LEASE_CONFLICTS).labels(source="local").inc()
                self._drop("conflict")
                continue
            if item.outcome.drop is not None:
                self._drop(item.outcome.drop.value)
            result = item.result
            if isinstance(result, Probe):
                if self.prober is not None:
                    probes.append(result)
                    continue
                result = result.reply  # probing is off: the offer goes out
            if isinstance(result, Reply):
                replies.append(result)
            for action in item.outcome.actions:
                if isinstance(action, Commit | Release | Decline):
                    changed[action.address] = None
        return replies, list(changed), probes

    # -- the address probe (RFC 2131 §4.4.1) ---------------------------------

    def _probe(self, probe: Probe) -> None:
        """Probe ``probe.address``; offer it on silence, else quarantine it and try another."""
        assert self.prober is not None
        on_link = probe.request.giaddr == ZERO
        self.prober.probe(probe.address, probe.ingress.interface, on_link,
                          lambda in_use: self._probed(probe, in_use))

    def _probed(self, probe: Probe, in_use: bool) -> None:
        if self.server is None or self.store is None:
            return  # stopped meanwhile
        if not in_use:
            self._send([probe.reply])
            return
        log.warning("dhcp: %s answered the probe: in use by a host we did not lease it to; "
                    "quarantined for %.0f s", probe.address, self.config.decline_quarantine)
        outcome = self.server.address_in_use(probe, time.time())
        try:
            with self.store.batch():
                result = apply(outcome, self.store)
        except LeaseConflict:
            self.metrics.counter(m.LEASE_CONFLICTS).labels(source="local").inc()
            self._drop("conflict")
            return
        if outcome.drop is not None:
            self._drop(outcome.drop.value)
        quarantined = self.store.get(probe.address)
        if quarantined is not None and self.peer is not None and self.peer.connected:
            self.peer.replicate([quarantined]).addErrback(lambda _: None)
        if isinstance(result, Probe):
            self._probe(result)
        elif isinstance(result, Reply):
            self._send([result])

    def _send(self, replies: Sequence[Reply]) -> None:
        transport = self.transport
        if transport is None:
            return
        for reply in replies:
            payload = encode(reply.packet, reply.max_size)
            if transport.send(reply, payload):
                self.metrics.counter(m.REPLIES_SENT).labels(
                    type=type_label(reply.packet.message_type),
                    delivery=reply.delivery.value).inc()
            else:
                self.metrics.counter(m.SEND_ERRORS).inc()

    def _unacked(self, failure: Failure, count: int) -> None:
        cast(Any, failure).trap(PeerDown)
        log.warning("dhcp: %d repl(ies) withheld: the peer did not acknowledge (%s)",
                    count, failure.value)
        for _ in range(count):
            self._drop("peer_unacknowledged")

    # -- failover and the peer link (PeerListener) -------------------------

    def _tick(self) -> None:
        if self.failover is not None:
            before = self.failover.state
            self.failover.tick(time.time())
            self._log_state(before)

    def _log_state(self, before: State) -> None:
        assert self.failover is not None
        if self.failover.state is not before:
            log.warning("dhcp failover: %s -> %s", before.value, self.failover.state.value)
            self.peer_send({"t": "state", "state": self.failover.state.value})
            self._save_failover()

    def peer_send(self, body: dict[str, Any]) -> None:
        if self.peer is not None:
            self.peer.send(body)

    def peer_up(self) -> None:
        assert self.failover is not None
        before = self.failover.state
        self.peer_state = "connected"
        self._peer_seen = time.time()
        self._sync_received = self._sync_acked = False
        self._peer_said_bye = False
        self.failover.link_up(time.time())
        self._log_state(before)
        self.peer_send({"t": "state", "state": self.failover.state.value})
        self.bulk_sync()

    def bulk_sync(self) -> int:
        """Send every record to the peer, then ``sync-done``; return how many."""
        assert self.store is not None
        records = [lease_to_wire(lease) for lease in self.store.leases()]
        for start in range(0, len(records), SYNC_CHUNK):
            self.peer_send({"t": "sync", "leases": records[start:start + SYNC_CHUNK]})
        self.peer_send({"t": "sync-done", "count": len(records)})
        return len(records)

    def peer_lost(self, reason: str) -> None:
        assert self.failover is not None
        before = self.failover.state
        self._was_normal = before is State.NORMAL and not self._peer_said_bye
        self._peer_seen = time.time()
        self.peer_state = "unknown"
        self.peer_failover = "unknown"
        self.failover.link_lost(time.time())
        self._log_state(before)

    def peer_refused(self) -> None:
        assert self.failover is not None
        before = self.failover.state
        self.peer_state = "down"
        self.failover.peer_refused(time.time(), was_normal=self._was_normal)
        self._was_normal = False
        self._log_state(before)

    def peer_unreachable(self) -> None:
        assert self.failover is not None
        self.peer_state = "unreachable"
        self.failover.peer_unknown()

    def peer_message(self, body: dict[str, Any]) -> None:
        kind = body.get("t")
        try:
            if kind in ("upd", "sync"):
                conflicts = self._merge(body.get("leases"))
                if kind == "upd":
                    self.peer_send({"t": "ack", "seq": body.get("seq"), "conflicts": conflicts})
            elif kind == "sync-done":
                self._sync_received = True
                if self.failover is not None:
                    self.failover.sync_received = True
                self.peer_send({"t": "synced"})
                self._maybe_synced()
            elif kind == "synced":
                self._sync_acked = True
                self._maybe_synced()
            elif kind == "bye":
                self._peer_said_bye = True
                log.info("dhcp: the peer is stopping (planned): its half stays its own")
            elif kind == "state":
                self.peer_failover = str(body.get("state"))
        except PeerProtocolError as exc:
            log.warning("peer link: %s", exc)
            if self.peer is not None and self.peer.active is not None:
                self.peer.active.transport.abortConnection()  # type: ignore[union-attr]

    def _merge(self, items: object) -> int:
        assert self.store is not None
        if not isinstance(items, list):
            raise PeerProtocolError("lease list expected")
        leases = [lease_from_wire(item) for item in items]
        now = time.time()
        conflicts = 0
        with self.store.batch():
            for lease in leases:
                try:
                    self.store.merge(lease, now)
                except LeaseConflict as exc:
                    conflicts += 1
                    self.metrics.counter(m.LEASE_CONFLICTS).labels(source="peer").inc()
                    log.error("dhcp: the peer has %s for %s, but here it is %s for %s; "
                              "keeping ours", lease.address, lease.client,
                              exc.holder.state.value, exc.holder.client)
        return conflicts

    def _maybe_synced(self) -> None:
        assert self.failover is not None
        if self._sync_received and self._sync_acked:
            before = self.failover.state
            self.failover.synced(time.time())
            self._log_state(before)

    # -- registrations -----------------------------------------------------

    def _watch_registrations(self) -> None:
        path = self.section.registrations
        if path is None:
            return
        self._observer = FileWatch(self.reactor, path, self.reload_registrations,
                                   debounce=RELOAD_DEBOUNCE)

    def reload_registrations(self) -> bool:
        """Re-read the registrations file; apply it whole or keep the old set."""
        path = self.section.registrations
        if path is None or self.server is None:
            return False
        result = load(path, self.config.subnets)
        for warning in result.warnings:
            log.warning("registrations: %s", warning)
        if result.registrations is None:
            for error in result.errors:
                log.error("registrations: %s", error)
            self.registrations_error = "; ".join(str(e) for e in result.errors)
            log.error("registrations: %s rejected, %d registration(s) kept", path,
                      len(self.server.registrations))
            self.metrics.counter(m.REGISTRATION_RELOADS).labels(result="rejected").inc()
            return False
        self.server.registrations = result.registrations
        self.registrations_error = ""
        log.info("registrations: %s applied, %d registration(s)", path,
                 len(result.registrations))
        self.metrics.counter(m.REGISTRATION_RELOADS).labels(result="applied").inc()
        return True

    # -- housekeeping ------------------------------------------------------

    def _expire(self) -> None:
        if self.store is not None:
            self.store.expire(time.time())

    def _refresh_addresses(self) -> None:
        interfaces = list(self.section.interfaces) or [self.node_config.interface]
        for name in interfaces:
            try:
                self.addresses[name] = interface_addresses(name)
            except OSError as exc:
                log.warning("dhcp: cannot read the addresses of %s: %s", name, exc)

    def pool_usage(self) -> list[JsonObject]:
        assert self.store is not None
        now = time.time()
        usage: list[JsonObject] = []
        for subnet in self.config.subnets:
            for pool in subnet.pools:
                counts = self.store.usage(pool.first, pool.last, now)
                usage.append({"subnet": str(subnet.network), "pool": str(pool),
                              "total": counts.total, "free": counts.free, "bound": counts.bound,
                              "offered": counts.offered, "declined": counts.declined})
        return usage

    def _update_metrics(self) -> None:
        if self.store is None or self.failover is None:
            return
        pools: dict[tuple[str, str], int] = {}
        for item in self.pool_usage():
            for state in ("free", "bound", "offered", "declined"):
                key = (item["subnet"], state)
                pools[key] = pools.get(key, 0) + int(item[state])
        gauge = self.metrics.gauge(m.POOL_ADDRESSES)
        for (subnet, state), value in pools.items():
            gauge.labels(subnet=subnet, state=state).set(value)
        now = time.time()
        active = sum(1 for lease in self.store.leases()
                     if lease.state is LeaseState.BOUND and lease.holds(now))
        self.metrics.gauge(m.LEASES).set(active)
        for each in State:
            self.metrics.gauge(m.FAILOVER_STATE).labels(state=each.value).set(
                1 if each is self.failover.state else 0)
        connected = self.peer is not None and self.peer.connected
        self.metrics.gauge(m.PEER_CONNECTED).set(1 if connected else 0)
        self.metrics.gauge(m.REPLICATION_LAG).set(self.peer.lag if self.peer else 0.0)
        rtt = self.peer.last_rtt if self.peer is not None else None
        self.metrics.gauge(m.REPLICATION_RTT).set(rtt or 0.0)

    # -- control -----------------------------------------------------------

    def status(self) -> JsonObject:
        if self.failover is None or self.store is None or self.server is None:
            return {"detail": "starting"}
        failover = self.failover
        pools = self.pool_usage()
        free = sum(int(p["free"]) for p in pools)
        total = sum(int(p["total"]) for p in pools)
        peer: JsonObject | None = None
        if self.peer is not None and self.peer_node is not None:
            peer = {"node": self.peer_node.name, "state": self.peer_state,
                    "failover": self.peer_failover, "connected": self.peer.connected,
                    "rtt": self.peer.last_rtt, "auth_failures": self.peer.auth_failures}
        answering = failover.serving and (self.mode is Mode.SPLIT or failover.vip_master)
        return {
            "mode": self.mode.value,
            "server_id": str(self.config.server_id),
            "failover": failover.state.value,
            "failover_since": failover.since,
            "failover_hold": failover.hold and failover.state is State.STARTUP,
            "answering": answering,
            "vip": {"name": self.section.vip, "master": failover.vip_master},
            "peer": peer,
            "replication_lag": self.peer.lag if self.peer is not None else 0.0,
            "pools": pools,
            "registrations": len(self.server.registrations),
            "registrations_error": self.registrations_error,
            "packets": {"received": dict(self.received), "dropped": dict(self.dropped)},
            "probes": None if self.prober is None else {
                "timeout": self.prober.timeout, "silent": self.prober.silent,
                "answered": self.prober.answered},
            "detail": f"{failover.state.value}, {'answering' if answering else 'silent'}, "
                      f"{free}/{total} free",
        }

    def verbs(self) -> Iterable[Verb]:
        return (
            Verb("GET", "/leases", self._leases_verb, "every lease record"),
            Verb("POST", "/lease", self._lease_verb, "one address's record: {ip}"),
            Verb("POST", "/partner-down", self._partner_down_verb,
                 "assert the peer is down: take its half of the pools"),
            Verb("POST", "/sync", self._sync_verb, "send every lease record to the peer again"),
            Verb("POST", "/vip", self._vip_verb,
                 "vipd: this node's role for the DHCP VIP {vip, state}"),
        )

    def _require(self) -> tuple[LeaseStore, Failover]:
        if self.store is None or self.failover is None:
            raise ControlError(HTTPStatus.CONFLICT, "dhcp is not running")
        return self.store, self.failover

    def _leases_verb(self, _body: JsonObject) -> JsonObject:
        store, _ = self._require()
        now = time.time()
        return {"leases": [lease_json(lease, now) for lease in store.leases()]}

    def _lease_verb(self, body: JsonObject) -> JsonObject:
        store, _ = self._require()
        try:
            address = IPv4Address(str(body.get("ip", "")))
        except ValueError:
            raise ControlError(HTTPStatus.BAD_REQUEST, "ip: an IPv4 address is needed") from None
        lease = store.get(address)
        return {"ip": str(address),
                "lease": None if lease is None else lease_json(lease, time.time())}

    def _partner_down_verb(self, _body: JsonObject) -> JsonObject:
        _, failover = self._require()
        before = failover.state
        try:
            failover.partner_down(time.time())
        except IllegalTransition as exc:
            raise ControlError(HTTPStatus.CONFLICT, f"refused: {exc}") from None
        log.warning("dhcp failover: the operator declared the peer down")
        self._log_state(before)
        return {"failover": failover.state.value}

    def _sync_verb(self, _body: JsonObject) -> JsonObject:
        self._require()
        if self.peer is None or not self.peer.connected:
            raise ControlError(HTTPStatus.CONFLICT, "no peer link")
        return {"sent": self.bulk_sync()}

    def _vip_verb(self, body: JsonObject) -> JsonObject:
        _, failover = self._require()
        name, state = body.get("vip"), body.get("state")
        if state not in ("master", "backup", "fault", "stop"):
            raise ControlError(HTTPStatus.BAD_REQUEST, "state: master, backup, fault or stop")
        if self.section.vip and name != self.section.vip:
            raise ControlError(HTTPStatus.NOT_FOUND,
                               f"vip: this server follows {self.section.vip!r}, not {name!r}")
        was = failover.vip_master
        failover.vip_master = state == "master"
        if was != failover.vip_master:
            log.warning("dhcp: VIP %s is now %s here: %s", name, state,
                        "answering" if failover.vip_master else "silent")
        return {"vip": name, "state": state, "answering": failover.vip_master
                and failover.serving}

