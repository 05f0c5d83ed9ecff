"""``imapha backend``: the embedded Maildir IMAP server as a daemon role.

Theory of operation
-------------------
:class:`BackendService` is the :class:`~imapha.daemon.Service` the runtime
drives. ``start`` checks that ``maildir_root`` is a directory, starts the
worker pool (Maildir I/O blocks; see :mod:`imapha.server.protocol`), the
shared inotify hub (one inotify instance for every session's folder)
and the cross-host poll, then listens: every ``[backend] imap`` address
(STARTTLS offered when ``tls_cert``/``tls_key`` are set) and ``lmtp`` if set.

Ready means: running, listening, not draining, and the Maildir root still a
reachable directory (a lost NFS mount makes the node unready, so vipd can move
the VIP away). Drain stops listening and sends every session ``* BYE
[UNAVAILABLE]`` at its next command boundary (at once when idle); undrain
listens again. Stop does the same and waits for the connections to close
until the deadline. ``POST /kick {"user": U}`` ends U's sessions the same way.

Metrics are only touched in the reactor thread: the session hooks (called in
worker threads) hop over with ``callFromThread``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.threadpool import ThreadPool

from imapha.control import ControlError, JsonObject, Verb
from imapha.daemon import DaemonContext, ServiceBase
from imapha.maildir.deliver import deliver
from imapha.maildir.folders import ensure_maildir
from imapha.maildir.fsops import FileSystem, LockTimeout, Perms
from imapha.maildir.inotify import InotifyHub
from imapha.server import metrics as m
from imapha.server.lmtp import DEFAULT_MAX_SIZE, DeliveryResult
from imapha.server.passwd import UserDb
from imapha.server.protocol import ImapFactory, ImapProtocol, LmtpFactory
from imapha.server.session import ServerContext, SessionHooks

log = logging.getLogger(__name__)

#: Seconds between the cross-host stat polls of watched folders.
POLL_INTERVAL = 2.0
#: Worker threads for Maildir I/O (sessions run one job at a time each).
POOL_MAX = 32


class BackendService(ServiceBase):
    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.reactor: Any = ctx.reactor
        self.cfg = ctx.node_config.backend
        self.hostname = socket.gethostname()
        self.max_message_size = DEFAULT_MAX_SIZE
        self.users = UserDb(self.cfg.passwd_file)
        self.fs = FileSystem()
        self.server_tls: Any = None
        if self.cfg.tls_cert is not None and self.cfg.tls_key is not None:
            from imapha.proxy.tls import ServerTLS

            self.server_tls = ServerTLS(self.cfg.tls_cert, self.cfg.tls_key)
        hooks = SessionHooks(command_done=self._command_done_thread,
                             logged_in=self._logged_in_thread,
                             appended=self._appended_thread)
        self.context = ServerContext(self.users, self.cfg.maildir_root,
                                     tls_available=self.server_tls is not None,
                                     trusted_proxies=tuple(self.cfg.trusted_proxies),
                                     fs=self.fs, hooks=hooks, clock=time.monotonic)
        self.pool = ThreadPool(minthreads=2, maxthreads=POOL_MAX, name="imapha-backend")
        self.inotify = InotifyHub()
        self.ports: list[tuple[str, str, Any]] = []
        self.protocols: set[ImapProtocol] = set()
        self.draining = False
        self._poll = LoopingCall(self._poll_watches)
        dm = ctx.metrics
        self.m_sessions = dm.gauge(m.SESSIONS)
        self.m_logins = dm.counter(m.LOGINS)
        self.m_commands = dm.counter(m.COMMANDS)
        self.m_seconds = dm.histogram(m.COMMAND_SECONDS)
        self.m_appends = dm.counter(m.APPENDS)
        self.m_deliveries = dm.counter(m.DELIVERIES)

    # -- hooks (worker threads) ---------------------------------------------------------
    def _command_done_thread(self, name: str, status: str, seconds: float) -> None:
        self.reactor.callFromThread(self._command_done, name, status, seconds)

    def _command_done(self, name: str, status: str, seconds: float) -> None:
        self.m_commands.labels(name, status).inc()
        self.m_seconds.labels(name).observe(seconds)

    def _logged_in_thread(self, user: str) -> None:
        self.reactor.callFromThread(self.m_logins.inc)

    def _appended_thread(self) -> None:
        self.reactor.callFromThread(self.m_appends.inc)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Deferred[None]:
        root = self.cfg.maildir_root
        if not root.is_dir():
            raise RuntimeError(f"maildir_root {root} is not a directory")
        self.pool.start()
        self.reactor.addSystemEventTrigger("during", "shutdown", self.pool.stop)
        self.inotify.start()
        self._poll.start(POLL_INTERVAL, now=False)
        self._listen()
        log.info("backend listening on %s; maildir root %s",
                 ", ".join(f"{k} {a}" for k, a, _ in self.ports), root)
        return defer.succeed(None)

    def _listen(self) -> None:
        for hp in self.cfg.imap:
            port = self.reactor.listenTCP(hp.port, ImapFactory(self, "imap"), backlog=1024,
                                          interface=hp.host)
            self.ports.append(("imap", _address(port), port))
        if self.cfg.lmtp is not None:
            hp = self.cfg.lmtp
            port = self.reactor.listenTCP(hp.port, LmtpFactory(self), backlog=128,
                                          interface=hp.host)
            self.ports.append(("lmtp", _address(port), port))

    def _unlisten(self) -> Deferred[None]:
        ports, self.ports = self.ports, []
        steps = [defer.maybeDeferred(port.stopListening) for _, _, port in ports]
        done: Deferred[Any] = defer.DeferredList(steps, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def is_ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.ports:
            return False, "not listening"
        root = self.cfg.maildir_root
        try:
            # One READDIR (a dead NFS mount fails here, or hangs: mount it soft),
            # not a listing of every user.
            with os.scandir(root) as entries:
                next(entries, None)
        except OSError as exc:
            return False, f"maildir root {root}: {exc.strerror}"
        return True, ""

    def status(self) -> JsonObject:
        users = sorted({p.session.user for p in self.protocols
                        if p.session is not None and p.session.user})
        return {
            "detail": f"{len(self.protocols)} sessions, {len(users)} users",
            "listeners": [{"kind": kind, "address": addr} for kind, addr, _ in self.ports],
            "sessions": len(self.protocols),
            "users": len(users),
            "service_draining": self.draining,
        }

    def drain(self) -> Deferred[None]:
        self.draining = True
        self._bye_all("Server draining, reconnect")
        return self._unlisten()

    def undrain(self) -> None:
        self.draining = False
        if not self.ports:
            self._listen()

    def stop(self, deadline: float) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        if self._poll.running:
            self._poll.stop()

        def check() -> None:
            if not self.protocols or self.reactor.seconds() >= deadline:
                for proto in list(self.protocols):
                    transport: Any = proto.transport
                    transport.abortConnection()
                try:
                    self.inotify.stop()
                except Exception:
                    log.debug("inotify stop failed", exc_info=True)
                done.callback(None)
            else:
                self.reactor.callLater(0.05, check)

        def unlistened(_: object) -> None:
            self._bye_all("Server shutting down")
            check()

        self._unlisten().addCallback(unlistened)
        return done

    def _bye_all(self, text: str) -> None:
        for proto in list(self.protocols):
            proto.bye(text)

    # -- connections --------------------------------------------------------------------
    def opened(self, proto: ImapProtocol) -> None:
        self.protocols.add(proto)
        self.m_sessions.set(len(self.protocols))

    def closed(self, proto: ImapProtocol) -> None:
        self.protocols.discard(proto)
        self.m_sessions.set(len(self.protocols))

    def _poll_watches(self) -> None:
        for proto in list(self.protocols):
            if proto.watch is not None and proto.session is not None \
                    and proto.session.idling is not None:
                proto.watch.poll()

    # -- LMTP (worker threads) ----------------------------------------------------------
    def user_exists(self, user: str) -> bool:
        return _valid_user(user) and self.users.exists(user)

    def deliver_lmtp(self, user: str, sender: str, data: bytes) -> DeliveryResult:
        maildir = self.context.maildir_of(user)
        try:
            if not maildir.is_dir():
                home = maildir.parent
                if not home.is_dir():
                    self.fs.mkdir(home, Perms.from_dir(self.cfg.maildir_root))
                ensure_maildir(self.fs, maildir, Perms.from_dir(home), folder=False)
            header = f"Return-Path: <{sender}>\r\nDelivered-To: <{user}>\r\n".encode()
            deliver(maildir, header + data, fs=self.fs)
        except (OSError, LockTimeout) as exc:
            log.warning("LMTP delivery to %s failed: %s", user, exc)
            self.reactor.callFromThread(self.m_deliveries.labels("tempfail").inc)
            return DeliveryResult(False, True, "Temporary failure")
        self.reactor.callFromThread(self.m_deliveries.labels("ok").inc)
        return DeliveryResult(True)

    # -- verbs --------------------------------------------------------------------------
    def verbs(self) -> Iterable[Verb]:
        yield Verb("POST", "/kick", self._kick, "end a user's sessions")

    def _kick(self, body: JsonObject) -> JsonObject:
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise ControlError(HTTPStatus.BAD_REQUEST, '"user" must be a non-empty string')
        kicked = 0
        for proto in list(self.protocols):
            if proto.session is not None and proto.session.user == user:
                proto.bye("Session ended by the administrator")
                kicked += 1
        return {"user": user, "sessions": kicked}


def _valid_user(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/:\0\n")


def _address(port: Any) -> str:
    host = cast(Any, port).getHost()
    return f"[{host.host}]:{host.port}" if ":" in host.host else f"{host.host}:{host.port}"


__all__ = ["BackendService"]
