"""The ``vipd`` service: every VIP of the cluster on this node, tracked and reported.

Theory of operation
-------------------
:class:`VipdService` is the :class:`~imapha.daemon.Service` of the ``vipd``
role. At start it builds, for each ``[[vips]]`` entry, a
:class:`~imapha.vip.speaker.Speaker` (machine + transport + address driver) with
this node's priority (``priority_for(node)``) and interval
(``advert_interval`` in centiseconds). VIPs sharing an interface share one
transport and one :class:`~imapha.vip.reactor.ReactorRunner`:

- ``transport = "multicast"``: :class:`RawIPv4Transport` to 224.0.0.18;
- ``"unicast"``: the same, to the other nodes' addresses;
- ``"udp"``: :class:`UdpTransport` on ``(node address, UDP_PORT)`` to the other
  nodes on the same port (each node has its own 127.0.0.x: loopback mode).

Drivers: ``netlink`` = :class:`NetlinkDriver` (one GARP per call) wrapped in
:class:`SpacedAnnouncements` (``garp_count`` x ``garp_interval``); ``listener`` =
:class:`ListenerDriver` whose bind/unbind go to the tracked service as
``POST /vip-listen``. Every driver is flushed before the routers start, so a
crashed predecessor's VIPs are gone.

Routers start *not ready*: a VIP is taken only once its inputs have been seen
healthy (tracking.py). A poll loop (every advert interval, at least 50 ms, at
most 1 s) reads link flags and track files, and asks each tracked service's
``GET /ready`` in a pool thread (one request in flight per service, bounded
timeout); track scripts run on their own intervals. After any change the
VIP's :func:`~imapha.vip.tracking.assess` result goes to the machine as
``SetPriority``/``SetReady``.

What this node *is* for a VIP (the reported state) is derived, not stored:
``master`` while the machine is MASTER, else ``fault`` while not ready, else
``backup``; ``stop`` when vipd stops. Each change is told to the tracked
service (``POST /vip``) and runs the matching hook, both queued in order on
pool threads: neither ever delays an advert. A failure is logged and counted.

Drain: ``Resign`` to every router (priority 0, addresses removed, BACKUP until
undrain); undrain: ``Unresign``, after which a VIP comes back only by the
machine's rules, i.e. once its tracked service is ready.

Split brain (docs/vrrp.md): while partitioned both nodes are MASTER of a VIP
and both hold it; each tells its own proxy "master", which is safe because no
service depends on a single master (DESIGN.md). At heal the machine resolves
it (the worse master yields and removes its addresses at once; the better one
answers with an advert and a GARP burst), and the loser's service is told
"backup".
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pyroute2 import IPRoute
from twisted.internet import defer, task, threads
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from imapha import metrics
from imapha.config import NodeConfig
from imapha.config.model import VipConfig, VrrpConfig
from imapha.control import ControlResponse, JsonObject
from imapha.daemon import DaemonContext, ReloadRejected, ServiceBase, config_diff
from imapha.vip.addresses import AddressDriver, ListenerDriver, NetlinkDriver
from imapha.vip.machine import (
    Relisten,
    Resign,
    RouterConfig,
    SetPriority,
    SetReady,
    State,
    StateChanged,
    Unresign,
    VirtualRouter,
)
from imapha.vip.packet import DropReason, IPAddress
from imapha.vip.reactor import ReactorRunner, SpacedAnnouncements
from imapha.vip.speaker import Speaker
from imapha.vip.tracking import Check, assess, file_check, link_is_up
from imapha.vip.transport import RawIPv4Transport, Received, UdpTransport
from imapha.vip.work import CommandResult, Outcome, SerialWorker, control_call, run_command

log = logging.getLogger(__name__)
# pyroute2 logs every netlink message at debug level: far too much next to ours.
logging.getLogger("pyroute2").setLevel(logging.INFO)

UDP_PORT = 15798
"""The UDP transport's port on every node (there is no config key for it yet)."""

ARP_LOCKTIME_TAIL = 1.1
"""One more gratuitous ARP this long after a burst that ends sooner (Linux locktime 1 s)."""

THREAD_POOL_SIZE = 20
READY_TIMEOUT_MAX = 1.0
NOTIFY_TIMEOUT = 2.0

# ---- metric names (declared for the dashboard check; exported by _Collector) -------------
STATE = metrics.gauge("vipd", "imapha_vipd_vip_state",
                      "1 for the state this node is in for each VIP (master/backup/fault/stop)",
                      ("vip", "state"))
PRIORITY = metrics.gauge("vipd", "imapha_vipd_effective_priority",
                         "Priority this node advertises for each VIP, tracking applied", ("vip",))
TRANSITIONS = metrics.counter("vipd", "imapha_vipd_transitions_total",
                              "VRRP state changes by VIP, new state and cause",
                              ("vip", "to", "cause"))
ADVERTS_SENT = metrics.counter("vipd", "imapha_vipd_adverts_sent_total",
                               "Advertisements sent by VIP and cause", ("vip", "cause"))
ADVERTS_RECEIVED = metrics.counter("vipd", "imapha_vipd_adverts_received_total",
                                   "Advertisements for this VIP's VRID that passed decoding",
                                   ("vip",))
DROPPED = metrics.counter("vipd", "imapha_vipd_dropped_packets_total",
                          "Received VRRP packets dropped, by reason", ("reason",))
SEND_ERRORS = metrics.counter("vipd", "imapha_vipd_send_errors_total",
                              "Advertisements the kernel refused (link down, buffer full)",
                              ("interface",))
MASTER_SECONDS = metrics.counter("vipd", "imapha_vipd_master_seconds_total",
                                 "Seconds this node has been master of each VIP", ("vip",))
TRACKED_READY = metrics.gauge("vipd", "imapha_vipd_tracked_ready_state",
                              "1 while the tracked service answers GET /ready with 200",
                              ("service",))
LINK_UP = metrics.gauge("vipd", "imapha_vipd_link_up_state",
                        "1 while the VIP interface is up with a carrier", ("interface",))
HOOK_RUNS = metrics.counter("vipd", "imapha_vipd_hook_runs_total",
                            "Hook commands run, by hook and outcome", ("hook", "outcome"))
NOTIFICATIONS = metrics.counter("vipd", "imapha_vipd_notifications_total",
                                "State notifications to tracked services, by outcome",
                                ("service", "outcome"))
DRIVER_ERRORS = metrics.counter("vipd", "imapha_vipd_driver_errors_total",
                                "Address add/remove/announce calls that failed", ("vip",))

REPORTED_STATES = ("master", "backup", "fault", "stop")


@dataclass
class Vip:
    """One VIP's runtime on this node."""

    config: VipConfig
    speaker: Speaker
    runner: ReactorRunner
    interface: str
    base_priority: int
    reported: str = "stop"
    faults: tuple[str, ...] = ("starting",)
    master_since: float | None = None
    master_seconds: float = 0.0
    transitions: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def router(self) -> VirtualRouter:
        return self.speaker.router

    @property
    def address(self) -> IPAddress:
        return self.config.address.ip


@dataclass
class ScriptState:
    failing: bool | None = None  # None: not run yet
    last: CommandResult | None = None
    running: bool = False


def reported_state(router: VirtualRouter) -> str:
    """What this node is for the VIP, as services and hooks are told."""
    if router.state is State.MASTER:
        return "master"
    if router.state is State.INITIALIZE:
        return "stop"
    return "backup" if router.ready else "fault"


class ServiceListenerControl:
    """ListenerControl for the listener driver: ``POST /vip-listen`` to the tracked service."""

    def __init__(self, owner: VipdService, vip: VipConfig) -> None:
        self.owner = owner
        self.vip = vip

    def bind_vip(self, address: IPAddress) -> None:
        self.owner.post_to_service(self.vip, "/vip-listen",
                                   {"vip": self.vip.name, "address": str(address),
                                    "listen": True})

    def unbind_vip(self, address: IPAddress) -> None:
        self.owner.post_to_service(self.vip, "/vip-listen",
                                   {"vip": self.vip.name, "address": str(address),
                                    "listen": False})


class VipdService(ServiceBase):
    """See the module docstring."""

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.reactor = ctx.reactor
        self.vrrp: VrrpConfig = self.node_config.vrrp
        self.vips: dict[str, Vip] = {}
        self.runners: list[ReactorRunner] = []
        self.closers: list[Any] = []
        self.spaced: list[SpacedAnnouncements] = []
        self.service_ready: dict[str, bool | None] = {}
        self.service_reason: dict[str, str] = {}
        self._ready_inflight: set[str] = set()
        self.link_up: dict[str, bool] = {}
        self.scripts: dict[str, ScriptState] = {}
        self._script_loops: list[task.LoopingCall] = []
        self.file_checks: list[Check] = []
        self.drained = False
        self.running = False
        self.notify_workers: dict[str, SerialWorker] = {}
        self.hooks = SerialWorker(self.reactor, "hooks")
        self.hook_runs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.notifications: collections.Counter[tuple[str, str]] = collections.Counter()
        self._rejections_seen: set[tuple[str, str, int]] = set()
        self._poll: task.LoopingCall | None = None
        self._ipr: Any = None
        self._ifindex: dict[str, int] = {}
        ctx.metrics.registry.register(_Collector(self))

    # ---- building -----------------------------------------------------------------------

    @property
    def interval_cs(self) -> int:
        return round(self.vrrp.advert_interval * 100)

    @property
    def poll_interval(self) -> float:
        return min(1.0, max(0.05, self.vrrp.advert_interval))

    def _primary_for(self, interface: str) -> ipaddress.IPv4Address:
        node = self.node_config
        if interface == node.interface or self.vrrp.transport == "udp":
            if not isinstance(node.address, ipaddress.IPv4Address):
                raise ValueError(f"node {node.name}: vipd needs an IPv4 node address")
            return node.address
        for msg in self._ipr.get_addr(index=self._ifindex[interface], family=2):
            text = msg.get_attr("IFA_ADDRESS")
            if text:
                return ipaddress.IPv4Address(text)
        raise ValueError(f"interface {interface} has no IPv4 address to send VRRP from")

    def _peers(self) -> list[ipaddress.IPv4Address]:
        me = self.node_config.name
        return [n.address for name, n in self.ctx.config.nodes.items()
                if name != me and isinstance(n.address, ipaddress.IPv4Address)]

    def _transport(self, interface: str) -> RawIPv4Transport | UdpTransport:
        primary = self._primary_for(interface)
        if self.vrrp.transport == "udp":
            return UdpTransport((primary, UDP_PORT), [(p, UDP_PORT) for p in self._peers()])
        peers = self._peers() if self.vrrp.transport == "unicast" else []
        return RawIPv4Transport(interface, primary, peers)

    def _driver(self, vip: VipConfig, interface: str) -> AddressDriver:
        if self.vrrp.address_driver == "listener":
            if vip.track == "none":
                raise ValueError(f"VIP {vip.name}: the listener driver needs a tracked "
                                 "service to bind the VIP (track = \"none\")")
            return ListenerDriver(ServiceListenerControl(self, vip), [vip.address.ip])
        prefixes = {vip.address.ip: vip.address.network.prefixlen}
        netlink = NetlinkDriver(interface, vip.vrid, prefixes, repeat=1)
        self.closers.append(netlink)
        spaced = SpacedAnnouncements(netlink, self.reactor, self.vrrp.garp_count,
                                     self.vrrp.garp_interval, tail=ARP_LOCKTIME_TAIL)
        self.spaced.append(spaced)
        return spaced

    def _router_config(self, vip: VipConfig, primary: ipaddress.IPv4Address) -> RouterConfig:
        return RouterConfig(
            vrid=vip.vrid,
            priority=vip.priority_for(self.node_config.name),
            addresses=(vip.address.ip,),
            primary=primary,
            interval_cs=self.interval_cs,
            preempt=self.vrrp.preempt,
            preempt_delay=self.vrrp.preempt_delay,
            takeover_when_not_ready=self.vrrp.takeover_when_not_ready,
        )

    def build(self) -> None:
        """Sockets, drivers, speakers; flush our leftovers. Raises on any problem."""
        node = self.node_config
        self.reactor.suggestThreadPoolSize(THREAD_POOL_SIZE)
        self._ipr = IPRoute()
        self.closers.append(self._ipr)
        groups: dict[str, list[VipConfig]] = collections.defaultdict(list)
        for vip in self.ctx.config.vips:
            if vip.address.version != 4:
                raise ValueError(f"VIP {vip.name}: IPv6 VIPs are not supported by vipd yet")
            groups[vip.interface_for(node)].append(vip)
        for interface in groups:
            found = self._ipr.link_lookup(ifname=interface)
            if not found:
                raise ValueError(f"no interface {interface!r} on this node")
            self._ifindex[interface] = found[0]
        for interface, members in groups.items():
            transport = self._transport(interface)
            self.closers.append(transport)
            speakers: list[Speaker] = []
            built: list[tuple[VipConfig, Speaker]] = []
            for vip in members:
                driver = self._driver(vip, interface)
                router = VirtualRouter(self._router_config(vip, transport.primary), ready=False)
                speaker = Speaker(router, transport, driver, on_state=self._on_state_cb(vip.name))
                removed = driver.flush()
                if removed and self.vrrp.address_driver == "netlink":
                    log.warning("VIP %s: removed leftover %s", vip.name,
                                ", ".join(map(str, removed)))
                speakers.append(speaker)
                built.append((vip, speaker))
            runner = ReactorRunner(self.reactor, transport, speakers,
                                   observer=self._peer_watch(interface))
            self.runners.append(runner)
            for member, speaker in built:
                self.vips[member.name] = Vip(member, speaker, runner, interface,
                                             member.priority_for(node.name))
        for built_vip in self.vips.values():
            if built_vip.config.track != "none":
                self.service_ready.setdefault(built_vip.config.track, None)

    def _peer_watch(self, interface: str) -> Callable[[list[Received]], None]:
        """Re-announce our VIPs when a router we had not heard for a while speaks again.

        At the heal of a partition the loser may yield before the winner hears it
        as a stale master, and then nobody would repoint the ARP caches that the
        loser's promotion had taken. Any router coming back (heal, reboot, link)
        makes every VIP we are still master of on this interface (after the machines
        have processed the packets: a router just preempted announces nothing)
        announce itself again. A restarted peer is silent until it becomes master,
        so its return costs nothing extra.
        """
        last: dict[IPAddress, float] = {}

        def observe(packets: list[Received]) -> None:
            now = self.reactor.seconds()
            silence = 3 * self.vrrp.advert_interval + 1.0
            returned = False
            for pkt in packets:
                seen = last.get(pkt.src)
                if seen is None or now - seen > silence:
                    returned = True
                    log.info("VRRP peer %s on %s heard (again)", pkt.src, interface)
                last[pkt.src] = now
            if returned and self.running:
                for vip in self.vips.values():
                    if vip.interface == interface and vip.router.state is State.MASTER:
                        try:
                            vip.speaker.driver.announce(vip.router.config.addresses)
                        except Exception:
                            vip.speaker.driver_errors += 1
                            log.exception("VIP %s: re-announcing failed", vip.name)

        return observe

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        try:
            self.build()
        except BaseException:
            self._close()
            raise
        self._read_links()
        self._read_files()
        for vip in self.vips.values():
            self._apply_tracking(vip)
        for runner in self.runners:
            runner.start()
        self.running = True
        for vip in self.vips.values():
            self._report(vip)
        self._poll = task.LoopingCall(self._tick)
        self._poll.clock = self.reactor
        self._poll.start(self.poll_interval, now=True)
        self._start_scripts()
        log.info("vipd: %d VIP(s) on %s, interval %gs, transport %s, driver %s",
                 len(self.vips), ", ".join(sorted({v.interface for v in self.vips.values()})),
                 self.vrrp.advert_interval, self.vrrp.transport, self.vrrp.address_driver)
        return defer.succeed(None)

    def is_ready(self) -> tuple[bool, str]:
        if not self.running or not all(r.running for r in self.runners):
            return False, "virtual routers not running"
        return True, ""

    def drain(self) -> None:
        self.drained = True
        now = self.reactor.seconds()
        for vip in self.vips.values():
            vip.runner.feed(vip.config.vrid, Resign(now))
            self._report(vip)

    def undrain(self) -> None:
        self.drained = False
        now = self.reactor.seconds()
        for vip in self.vips.values():
            vip.runner.feed(vip.config.vrid, Unresign(now))
            self._report(vip)

    def stop(self, deadline: float) -> Deferred[None]:
        self.running = False
        for loop in [self._poll, *self._script_loops]:
            if loop is not None and loop.running:
                loop.stop()
        for runner in self.runners:
            if runner.running:
                runner.stop(graceful=True)
        for vip in self.vips.values():
            self._report(vip, force="stop")
        waits: list[Deferred[Any]] = [self.hooks.when_idle()]
        waits.extend(w.when_idle() for w in self.notify_workers.values())
        done: Deferred[Any] = defer.DeferredList(waits, consumeErrors=True)
        timeout = max(0.0, deadline - self.reactor.seconds())
        done.addTimeout(timeout, self.reactor)
        done.addErrback(lambda _f: log.warning("vipd: hooks/notifications still running "
                                               "at the stop deadline"))
        done.addBoth(lambda _: self._close())
        return done

    def _close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer.close()
            except Exception:  # closing on the way out: nothing to do but log
                log.exception("vipd: closing %r failed", closer)
        self.closers.clear()

    def reload(self, node: NodeConfig) -> list[str]:
        live = {"hooks", "hook_timeout", "track_scripts", "track_files", "garp_count",
                "garp_interval", "preempt", "preempt_delay", "takeover_when_not_ready"}
        changed = config_diff(self.vrrp, node.vrrp, "vrrp")
        blocked = [k for k in changed if k.split(".")[1] not in live]
        if blocked:
            raise ReloadRejected(f"{', '.join(blocked)} cannot change live; restart instead")
        if {v.config for v in self.vips.values()} != set(self.ctx.config.vips):
            raise ReloadRejected("[[vips]] cannot change live; restart instead")
        self.node_config = node
        self.vrrp = node.vrrp
        for spaced in self.spaced:
            spaced.count = self.vrrp.garp_count
            spaced.interval = self.vrrp.garp_interval
        for vip in self.vips.values():
            vip.router.config = dataclasses.replace(
                vip.router.config, preempt=self.vrrp.preempt,
                preempt_delay=self.vrrp.preempt_delay,
                takeover_when_not_ready=self.vrrp.takeover_when_not_ready)
        if any(k.startswith("vrrp.track_scripts") for k in changed):
            for loop in self._script_loops:
                if loop.running:
                    loop.stop()
            self._script_loops.clear()
            self.scripts.clear()
            self._start_scripts()
        self._read_files()
        for vip in self.vips.values():
            self._apply_tracking(vip)
        return changed

    # ---- tracking -----------------------------------------------------------------------

    def _tick(self) -> None:
        self._read_links()
        self._read_files()
        for vip in self.vips.values():
            self._apply_tracking(vip)
        for service in list(self.service_ready):
            self._poll_service(service)

    def _read_links(self) -> None:
        for interface, index in self._ifindex.items():
            try:
                links = self._ipr.get_links(index)
                up = bool(links) and link_is_up(int(links[0]["flags"]))
            except Exception as exc:  # interface deleted under us: down, keep going
                log.debug("link %s: %s", interface, exc)
                up = False
            was = self.link_up.get(interface)
            if was != up:
                log.log(logging.INFO if up else logging.WARNING, "link %s is %s",
                        interface, "up" if up else "down")
            self.link_up[interface] = up
            if was is False and up:
                # Deaf while it was down: listen for a whole Master_Down_Interval before
                # believing nobody is master (machine.Relisten).
                now = self.reactor.seconds()
                for vip in self.vips.values():
                    if vip.interface == interface:
                        vip.runner.feed(vip.config.vrid, Relisten(now))

    def _read_files(self) -> None:
        self.file_checks = [file_check(f.name, f.path, f.weight) for f in self.vrrp.track_files]

    def _poll_service(self, service: str) -> None:
        if service in self._ready_inflight:
            return
        path = self.ctx.config.control_socket(self.node_config.name, service) \
            if service in self.node_config.roles else None
        if path is None:
            self._service_answer(service, f"role {service} is not configured on this node")
            return
        self._ready_inflight.add(service)
        timeout = min(READY_TIMEOUT_MAX, max(0.2, 2 * self.vrrp.advert_interval))
        d: Deferred[ControlResponse | str] = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), control_call, path, "GET", "/ready",
            None, timeout)

        def done(answer: ControlResponse | str) -> None:
            self._ready_inflight.discard(service)
            self._service_answer(service, answer)

        def failed(failure: Failure) -> None:
            self._ready_inflight.discard(service)
            log.error("ready poll of %s failed: %s", service, failure.getErrorMessage())

        d.addCallbacks(done, failed)

    def _service_answer(self, service: str, answer: ControlResponse | str) -> None:
        if isinstance(answer, str):
            ready, reason = False, answer
        elif answer.status == 200:
            ready, reason = True, ""
        else:
            ready = False
            reason = str(answer.body.get("reason") or answer.error)
        if self.service_ready.get(service) != ready:
            log.log(logging.INFO if ready else logging.WARNING, "tracked %s is %s", service,
                    "ready" if ready else f"not ready: {reason}")
        self.service_ready[service] = ready
        self.service_reason[service] = reason
        if not self.running:
            return
        for vip in self.vips.values():
            if vip.config.track == service:
                self._apply_tracking(vip)

    def _start_scripts(self) -> None:
        for script in self.vrrp.track_scripts:
            self.scripts[script.name] = ScriptState()
            loop = task.LoopingCall(self._run_script, script.name, script.command,
                                    script.timeout)
            loop.clock = self.reactor
            loop.start(script.interval, now=True)
            self._script_loops.append(loop)

    def _run_script(self, name: str, command: str, timeout: float) -> None:
        state = self.scripts.get(name)
        if state is None or state.running:
            return
        state.running = True
        d: Deferred[CommandResult] = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), run_command, command, timeout, None)

        def done(result: CommandResult) -> None:
            state.running = False
            failing = result.outcome is not Outcome.OK
            if state.failing != failing:
                log.log(logging.WARNING if failing else logging.INFO,
                        "track script %s %s (%s%s)", name, "fails" if failing else "passes",
                        result.outcome.value,
                        f", exit {result.returncode}" if result.returncode else "")
            state.failing = failing
            state.last = result
            if self.running:
                for vip in self.vips.values():
                    self._apply_tracking(vip)

        d.addCallback(done)
        d.addErrback(lambda f: log.error("track script %s: %s", name, f.getErrorMessage()))

    def checks(self, vip: Vip) -> Iterator[Check]:
        yield Check("link", not self.link_up.get(vip.interface, False), 0,
                    f"{vip.interface} down")
        if vip.config.track != "none":
            ready = self.service_ready.get(vip.config.track)
            detail = "no answer yet" if ready is None else \
                self.service_reason.get(vip.config.track, "")
            yield Check(f"service {vip.config.track}", ready is not True, 0, detail)
        for script in self.vrrp.track_scripts:
            state = self.scripts.get(script.name)
            failing = True if state is None or state.failing is None else state.failing
            detail = "not run yet" if state is None or state.last is None else \
                state.last.outcome.value
            yield Check(f"script {script.name}", failing, script.weight, detail)
        yield from self.file_checks

    def _apply_tracking(self, vip: Vip) -> None:
        result = assess(vip.base_priority, self.checks(vip))
        now = self.reactor.seconds()
        if result.priority != vip.router.priority:
            log.info("VIP %s: priority %d -> %d", vip.name, vip.router.priority, result.priority)
            vip.runner.feed(vip.config.vrid, SetPriority(now, result.priority))
        if result.faults != vip.faults and result.faults:
            log.warning("VIP %s: not ready: %s", vip.name, "; ".join(result.faults))
        vip.faults = result.faults
        if result.ready != vip.router.ready:
            if result.ready:
                log.info("VIP %s: ready", vip.name)
            vip.runner.feed(vip.config.vrid, SetReady(now, result.ready))
        self._report(vip)

    # ---- reporting: hooks and the tracked service ---------------------------------------

    def _on_state_cb(self, name: str) -> Any:
        def on_state(change: StateChanged, now: float) -> None:
            vip = self.vips.get(name)
            if vip is None:
                return
            vip.transitions[(change.new.value, change.cause.value)] += 1
            # After the whole step (addresses added/removed), not in the middle of it.
            self.reactor.callLater(0, self._report, vip)

        return on_state

    def _settling(self) -> bool:
        """True until every tracked service has answered and every script has run once."""
        return any(r is None for r in self.service_ready.values()) or any(
            s.failing is None for s in self.scripts.values())

    def _report(self, vip: Vip, force: str | None = None) -> None:
        state = force or reported_state(vip.router)
        if state == vip.reported:
            return
        if state == "fault" and vip.reported == "stop" and self._settling():
            return  # starting up, not a fault: wait for the first answers
        old, vip.reported = vip.reported, state
        now = time.monotonic()
        if old == "master" and vip.master_since is not None:
            vip.master_seconds += now - vip.master_since
            vip.master_since = None
        if state == "master":
            vip.master_since = now
        log.info("VIP %s (%s): %s -> %s", vip.name, vip.address, old, state)
        self._run_hook(vip, state)
        if vip.config.track != "none":
            self.post_to_service(vip.config, "/vip", {
                "vip": vip.name, "state": state, "address": str(vip.address),
                "vrid": vip.config.vrid, "node": self.node_config.name})

    def _run_hook(self, vip: Vip, state: str) -> None:
        command = getattr(self.vrrp.hooks, state, "")
        if not command:
            return
        env = {"IMAPHA_VIP": vip.name, "IMAPHA_STATE": state,
               "IMAPHA_VRID": str(vip.config.vrid), "IMAPHA_ADDRESS": str(vip.address),
               "IMAPHA_NODE": self.node_config.name}
        timeout = self.vrrp.hook_timeout

        def done(result: CommandResult | None) -> None:
            if result is None:  # dropped from a full queue
                self.hook_runs[(state, "dropped")] += 1
                return
            self.hook_runs[(state, result.outcome.value)] += 1
            level = logging.INFO if result.outcome is Outcome.OK else logging.WARNING
            log.log(level, "hook %s for VIP %s: %s%s in %.3fs%s", state, vip.name,
                    result.outcome.value,
                    f" (exit {result.returncode})" if result.returncode else "",
                    result.seconds, f": {result.output[-200:]}" if result.output else "")

        d = self.hooks.submit(lambda: run_command(command, timeout, env))
        d.addCallback(done)
        d.addErrback(lambda f: log.error("hook %s: %s", state, f.getErrorMessage()))

    def post_to_service(self, vip: VipConfig, target: str, body: JsonObject) -> None:
        """Queue a POST to the tracked service of ``vip``; never blocks, never raises."""
        service = vip.track
        if service == "none" or service not in self.node_config.roles:
            return
        path: Path = self.ctx.config.control_socket(self.node_config.name, service)
        worker = self.notify_workers.get(service)
        if worker is None:
            worker = self.notify_workers[service] = SerialWorker(self.reactor,
                                                                 f"notify {service}")

        def done(answer: ControlResponse | str | None) -> None:
            if answer is None:
                outcome = "dropped"
            elif isinstance(answer, str):
                outcome = "unreachable"
                log.warning("telling %s %s %s failed: %s", service, target, body, answer)
            elif answer.ok:
                outcome = "ok"
            else:
                outcome = "rejected"
                key = (service, target, answer.status)
                level = logging.DEBUG if key in self._rejections_seen else logging.WARNING
                self._rejections_seen.add(key)
                log.log(level, "%s answered %s %s with %d: %s (logged once at warning level)",
                        service, target, body, answer.status, answer.error)
            self.notifications[(service, outcome)] += 1

        d = worker.submit(lambda: control_call(path, "POST", target, body, NOTIFY_TIMEOUT))
        d.addCallback(done)
        d.addErrback(lambda f: log.error("notify %s: %s", service, f.getErrorMessage()))

    # ---- status ------------------------------------------------------------------------

    def status(self) -> JsonObject:
        now = self.reactor.seconds()
        vips: list[JsonObject] = []
        for vip in self.vips.values():
            router = vip.router
            heard = vip.speaker.last_heard
            if router.state is State.MASTER:
                master: str | None = str(router.config.primary)
            elif heard is not None and heard[1] > 0 and now - heard[2] < router.master_down:
                master = str(heard[0])
            else:
                master = None
            vips.append({
                "name": vip.name, "address": str(vip.config.address), "vrid": vip.config.vrid,
                "interface": vip.interface, "state": vip.reported,
                "vrrp_state": router.state.value, "priority": router.priority,
                "advertised_priority": router.contending_priority,
                "base_priority": vip.base_priority, "master": master,
                "ready": router.ready, "faults": list(vip.faults),
                "resigned": router.resigned, "track": vip.config.track,
                "transitions": sum(vip.transitions.values()),
                "adverts_sent": {c.value: n for c, n in vip.speaker.adverts_sent.items()},
                "checks": [{"name": c.name, "failing": c.failing, "weight": c.weight,
                            "detail": c.detail} for c in self.checks(vip)],
            })
        masters = sum(1 for v in self.vips.values() if v.reported == "master")
        return {
            "detail": f"master of {masters}/{len(self.vips)} VIP(s)"
                      + (", drained" if self.drained else ""),
            "vips": vips,
            "drained": self.drained,
            "tracked": {s: r for s, r in self.service_ready.items()},
            "links": dict(self.link_up),
            "dropped": {r.value: n for r, n in sorted(self.dropped().items(),
                                                     key=lambda kv: kv[0].value)},
        }

    def dropped(self) -> collections.Counter[DropReason]:
        """Received packets dropped, by reason: transports, demux and machines together."""
        drops: collections.Counter[DropReason] = collections.Counter()
        for vip in self.vips.values():
            drops.update(vip.speaker.drops)
        for runner in self.runners:
            drops.update(runner.transport.drops)
            drops.update(runner.demux.drops)
        return drops

    def master_seconds(self, vip: Vip) -> float:
        extra = time.monotonic() - vip.master_since if vip.master_since is not None else 0.0
        return vip.master_seconds + extra


class _Collector:
    """Exports the speakers' and the service's own counters at scrape time."""

    def __init__(self, service: VipdService) -> None:
        self.service = service

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        svc = self.service
        state = GaugeMetricFamily(STATE.name, STATE.doc, labels=STATE.labels)
        prio = GaugeMetricFamily(PRIORITY.name, PRIORITY.doc, labels=PRIORITY.labels)
        trans = CounterMetricFamily(TRANSITIONS.name, TRANSITIONS.doc, labels=TRANSITIONS.labels)
        sent = CounterMetricFamily(ADVERTS_SENT.name, ADVERTS_SENT.doc, labels=ADVERTS_SENT.labels)
        recv = CounterMetricFamily(ADVERTS_RECEIVED.name, ADVERTS_RECEIVED.doc,
                                   labels=ADVERTS_RECEIVED.labels)
        mseconds = CounterMetricFamily(MASTER_SECONDS.name, MASTER_SECONDS.doc,
                                       labels=MASTER_SECONDS.labels)
        derr = CounterMetricFamily(DRIVER_ERRORS.name, DRIVER_ERRORS.doc,
                                   labels=DRIVER_ERRORS.labels)
        drops = svc.dropped()
        send_errors: dict[str, int] = {}
        for vip in svc.vips.values():
            for st in REPORTED_STATES:
                state.add_metric([vip.name, st], 1.0 if vip.reported == st else 0.0)
            prio.add_metric([vip.name], float(vip.router.contending_priority))
            for (to, cause), n in vip.transitions.items():
                trans.add_metric([vip.name, to, cause], float(n))
            for advert_cause, n in vip.speaker.adverts_sent.items():
                sent.add_metric([vip.name, advert_cause.value], float(n))
            recv.add_metric([vip.name], float(vip.speaker.adverts_received))
            mseconds.add_metric([vip.name], svc.master_seconds(vip))
            derr.add_metric([vip.name], float(vip.speaker.driver_errors))
        for runner in svc.runners:
            iface = getattr(runner.transport, "ifname", "udp")
            send_errors[iface] = send_errors.get(iface, 0) + runner.transport.send_errors
        dropped = CounterMetricFamily(DROPPED.name, DROPPED.doc, labels=DROPPED.labels)
        for reason, n in sorted(drops.items(), key=lambda kv: kv[0].value):
            dropped.add_metric([reason.value], float(n))
        serr = CounterMetricFamily(SEND_ERRORS.name, SEND_ERRORS.doc, labels=SEND_ERRORS.labels)
        for iface, n in send_errors.items():
            serr.add_metric([iface], float(n))
        tracked = GaugeMetricFamily(TRACKED_READY.name, TRACKED_READY.doc,
                                    labels=TRACKED_READY.labels)
        for service, ready in svc.service_ready.items():
            tracked.add_metric([service], 1.0 if ready else 0.0)
        links = GaugeMetricFamily(LINK_UP.name, LINK_UP.doc, labels=LINK_UP.labels)
        for iface, up in svc.link_up.items():
            links.add_metric([iface], 1.0 if up else 0.0)
        hooks = CounterMetricFamily(HOOK_RUNS.name, HOOK_RUNS.doc, labels=HOOK_RUNS.labels)
        for (hook, outcome), n in svc.hook_runs.items():
            hooks.add_metric([hook, outcome], float(n))
        notes = CounterMetricFamily(NOTIFICATIONS.name, NOTIFICATIONS.doc,
                                    labels=NOTIFICATIONS.labels)
        for (service, outcome), n in svc.notifications.items():
            notes.add_metric([service, outcome], float(n))
        return [state, prio, trans, sent, recv, dropped, serr, mseconds, tracked, links, hooks,
                notes, derr]
