"""One IMAP session, sans-I/O: client octets in, response octets and actions out.

Theory of operation
-------------------
:class:`Session` owns a :class:`~imapha.imap.ServerConnection` (framing,
literals, limits, the continuation hand-over of AUTHENTICATE/IDLE/STARTTLS)
and the session state (:mod:`imapha.server.state`). ``receive(data)`` feeds
octets and runs every complete command in order, so pipelined commands are
answered in the order sent (RFC 3501 §5.5); it returns the actions to carry
out: ``bytes`` to write, :class:`StartTLS`, :class:`Close`, :class:`Watch`
(the selected folder changed: watch this path, or none).

The store is the Maildir (:mod:`imapha.maildir`), whose calls block on the
file system. The session calls it directly and the Twisted shell runs each
``receive``/``wake`` in a worker thread, one at a time per session, so the
core stays a plain sequential program that tests drive with bytes.

Dispatch: the command name (``UID FETCH`` for the UID forms) is looked up in
:data:`imapha.server.state.ALLOWED` (wrong state: ``BAD``) and then in the
handler table of :mod:`imapha.server.commands` (one module per command or
small group). A handler returns :class:`Ok` (the text and code of the tagged
OK), :data:`PENDING` (it sent a ``+`` and waits for a continuation line) or
raises :class:`~imapha.server.errors.CommandError`. Before every tagged
response the selected folder is synced and changes by other sessions, other
processes and other hosts are announced (EXISTS, FETCH FLAGS and, except
during FETCH/STORE/SEARCH, EXPUNGE: RFC 3501 §7.4.1). During IDLE the shell
calls ``wake()`` when the folder's watch fires, which announces the same.

Nothing here knows about sockets, threads or the clock.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from imapha.imap import (
    AUTHENTICATED,
    CLOSED,
    NEED_DATA,
    PAUSED,
    PRE_LOGIN,
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    Capability,
    Command,
    ContinuationLine,
    ContinuationRequired,
    Greeting,
    Id,
    Login,
    Logout,
    Noop,
    ProtocolViolation,
    Sentinel,
    ServerConnection,
    StartTLS,
    Status,
    TaggedResponse,
    UntaggedStatus,
)
from imapha.imap.codes import ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.imap.errors import LocalProtocolError
from imapha.imap.responses import Response, encode_response
from imapha.imap.tokens import Atom, Tag
from imapha.maildir.fsops import FileSystem, LockTimeout
from imapha.proxy.limits import AuthPenalty
from imapha.server.errors import CommandError
from imapha.server.passwd import UserDb
from imapha.server.state import ALLOWED, NO_EXPUNGE, TRANSITIONS, Event, State, capabilities

if TYPE_CHECKING:
    from imapha.maildir.folders import Folders
    from imapha.server.selected import FolderCache, Selected


def _folder_cache() -> FolderCache:
    from imapha.server.selected import FolderCache

    return FolderCache()

_E = TypeVar("_E", AuthenticateResponse | AuthenticateCancel, ContinuationLine)

__all__ = ["AUTH_PENALTY_MAX", "PENDING", "Close", "Hold", "Ok", "ServerContext", "Session",
           "StartTLSAction", "Watch"]

log = logging.getLogger(__name__)

#: Longest delay before answering a failed login (the penalty doubles from 2 s).
AUTH_PENALTY_MAX: Final = 15.0
#: Output bytes are handed to the sink once this many are pending (big FETCHes).
FLUSH_AT: Final = 256 * 1024


@dataclass(frozen=True)
class StartTLSAction:
    """Start TLS on the transport now (the tagged OK is already written)."""


@dataclass(frozen=True)
class Close:
    """Close the connection after writing what came before."""


@dataclass(frozen=True)
class Hold:
    """Carry out what follows only after ``seconds`` (a failed login's penalty),
    then call :meth:`Session.resume`; the session reads no command until then."""

    seconds: float


@dataclass(frozen=True)
class Watch:
    """Watch ``path`` (the selected folder) for changes; None: stop watching."""

    path: Path | None


Action = bytes | StartTLSAction | Close | Watch | Hold


@dataclass(frozen=True)
class Ok:
    text: str = "Completed"
    code: ResponseCode | None = None


class _Pending:
    """A handler sent ``+`` and waits for the client's continuation line."""


PENDING: Final = _Pending()

Result = Ok | _Pending


@dataclass
class SessionHooks:
    """Callbacks the shell uses for metrics and logs (all optional)."""

    command_done: Callable[[str, str, float], None] | None = None
    logged_in: Callable[[str], None] | None = None
    appended: Callable[[], None] | None = None


@dataclass
class ServerContext:
    """What every session of one server shares."""

    users: UserDb
    maildir_root: Path
    tls_available: bool = False
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    fs: FileSystem = field(default_factory=FileSystem)
    hooks: SessionHooks = field(default_factory=SessionHooks)
    clock: Callable[[], float] | None = None
    mechanisms: tuple[str, ...] = ("PLAIN",)
    folder_cache: FolderCache = field(default_factory=_folder_cache)
    #: Failed logins per client address (the proxy's rule; see ``Session.penalize``).
    penalty: AuthPenalty = field(default_factory=lambda: AuthPenalty(AUTH_PENALTY_MAX))

    def maildir_of(self, user: str) -> Path:
        return self.maildir_root / user / "Maildir"


class Session:
    """See the module docstring."""

    def __init__(self, ctx: ServerContext, peer: str = "", *, tls: bool = False,
                 sink: Callable[[bytes], None] | None = None) -> None:
        self.ctx = ctx
        self.peer = peer
        self.client_ip = peer
        self.tls = tls
        self.sink = sink
        self.session_id = secrets.token_hex(6)
        self.conn = ServerConnection(PRE_LOGIN)
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.folders: Folders | None = None
        self.selected: Selected | None = None
        self.idling: Tag | None = None
        self.client_id: dict[str, str | None] = {}
        self._out: list[Action] = []
        self._buf = bytearray()
        self._pending_auth: Tag | None = None
        self._current: str = ""
        self._bye_sent = False
        self._end_after_tagged = False
        self._held = False

    # -- output -----------------------------------------------------------------------
    def write_raw(self, data: bytes) -> None:
        self._buf += data
        if self.sink is not None and len(self._buf) >= FLUSH_AT:
            self.sink(bytes(self._buf))
            self._buf.clear()

    def send(self, response: Response) -> None:
        self.write_raw(self.conn.send(response))

    def _action(self, action: Action) -> None:
        self._flush()
        self._out.append(action)

    def _flush(self) -> None:
        if self._buf:
            self._out.append(bytes(self._buf))
            self._buf.clear()

    def _take(self) -> list[Action]:
        self._flush()
        out, self._out = self._out, []
        return out

    # -- state ------------------------------------------------------------------------
    def move(self, event: Event) -> None:
        self.state = TRANSITIONS[(self.state, event)]

    @property
    def closed(self) -> bool:
        return self.state is State.LOGOUT or self._bye_sent

    def capabilities(self) -> tuple[str, ...]:
        from imapha.server.commands import HANDLERS

        return capabilities(self.state, starttls=self.ctx.tls_available and not self.tls,
                            mechanisms=self.ctx.mechanisms, implemented=frozenset(HANDLERS))

    def set_selected(self, selected: Selected | None) -> None:
        old = self.selected
        self.selected = selected
        if old is not selected:
            if old is not None:
                old.close()
            self._action(Watch(selected.path if selected is not None else None))

    def close(self) -> None:
        """The connection is gone: let go of the selected folder's shared view."""
        if self.selected is not None:
            self.selected.close()

    def logged_in(self, user: str, folders: Folders) -> None:
        self.user = user
        self.folders = folders
        self.conn.limits = AUTHENTICATED
        self.move(Event.LOGIN)
        if self.ctx.hooks.logged_in is not None:
            self.ctx.hooks.logged_in(user)

    # -- input --------------------------------------------------------------------------
    def greeting(self) -> list[Action]:
        code = ResponseCode.capability(self.capabilities())
        self.send(Greeting(Status.OK, "imapha ready", code))
        return self._take()

    def receive(self, data: bytes) -> list[Action]:
        """Feed octets (``b""`` = EOF); run what is complete; the actions to carry out."""
        self.conn.receive_data(data)
        self._run()
        return self._take()

    def wake(self) -> list[Action]:
        """The selected folder may have changed: announce it now if IDLE allows."""
        if self.idling is not None and self.selected is not None and not self.closed:
            for resp in self.selected.refresh(allow_expunge=True):
                self.send(resp)
            if self.selected.invalidated:
                return self.shutdown("Mailbox was deleted or rebuilt")
        return self._take()

    def shutdown(self, text: str = "Server shutting down") -> list[Action]:
        """BYE and close (drain, stop); call between commands."""
        self._bye(text, "UNAVAILABLE")
        return self._take()

    def _bye(self, text: str, code: str) -> None:
        if not self.closed:
            self.write_raw(encode_response(UntaggedStatus(Status.BYE, text, ResponseCode(code))))
            self._bye_sent = True
            self._action(Close())

    def _run(self) -> None:
        while not self.closed and not self._held:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            if event is CLOSED:
                self._bye_sent = True
                self._action(Close())
                return
            if isinstance(event, ContinuationRequired):
                self.write_raw(event.response)
            elif isinstance(event, ProtocolViolation):
                self.write_raw(event.response)
                if event.fatal:
                    self._bye_sent = True
                    self._action(Close())
                    return
            elif isinstance(event, AuthenticateResponse | AuthenticateCancel):
                self._guarded(self._auth_continued, event)
            elif isinstance(event, ContinuationLine):
                self._guarded(self._idle_line, event)
            elif not isinstance(event, Sentinel):
                self._command(event)

    def _guarded(self, step: Callable[[_E], None], event: _E) -> None:
        """A continuation step; a bug in it ends the session with BYE, not a crash."""
        try:
            step(event)
        except Exception:
            log.exception("session %s: continuation failed", self.session_id)
            self._bye("Internal error", "SERVERBUG")

    # -- dispatch ---------------------------------------------------------------------
    @staticmethod
    def command_name(cmd: ClientCommand) -> str:
        if isinstance(cmd, Command):
            if cmd.name == "UID" and cmd.args and isinstance(cmd.args[0], Atom):
                return "UID " + cmd.args[0].value.upper()
            return cmd.name
        return _EVENT_NAMES[type(cmd)]

    def _command(self, cmd: ClientCommand) -> None:
        from imapha.server.commands import HANDLERS

        name = self.command_name(cmd)
        self._current = name
        started = self.ctx.clock() if self.ctx.clock is not None else 0.0
        allowed = ALLOWED.get(name)
        handler = HANDLERS.get(name)
        status = "OK"
        try:
            if allowed is None or handler is None:
                raise CommandError(Status.BAD, "Unknown command")
            if self.state not in allowed:
                raise CommandError(Status.BAD, f"{name} is not allowed now")
            result = handler(self, cmd)
            if isinstance(result, _Pending):
                return
            self.finish(cmd.tag, result)
        except CommandError as err:
            status = err.status.value
            self._tagged_error(cmd.tag, err)
        except LockTimeout:
            status = "NO"
            log.warning("session %s: %s: folder lock timeout", self.session_id, name)
            self._tagged_error(cmd.tag, CommandError(Status.NO, "Mailbox is busy, try again",
                                                     ResponseCode("INUSE")))
        except LocalProtocolError:
            status = "NO"
            log.exception("session %s: %s built an invalid response", self.session_id, name)
            self._tagged_error(cmd.tag, CommandError(Status.NO, "Internal error",
                                                     ResponseCode("SERVERBUG")))
        except Exception:
            status = "NO"
            log.exception("session %s: %s failed", self.session_id, name)
            self._tagged_error(cmd.tag, CommandError(Status.NO, "Internal error",
                                                     ResponseCode("SERVERBUG")))
        finally:
            if self.ctx.hooks.command_done is not None and self.ctx.clock is not None:
                self.ctx.hooks.command_done(name, status, self.ctx.clock() - started)

    def _announce(self) -> None:
        if self.selected is not None and self.state is State.SELECTED:
            allow = self._current not in NO_EXPUNGE
            for resp in self.selected.refresh(allow_expunge=allow):
                self.send(resp)
            if self.selected.invalidated:
                # BYE now; the tagged response still follows, then the close.
                self.send(UntaggedStatus(Status.BYE, "Mailbox was deleted or rebuilt",
                                         ResponseCode("UNAVAILABLE")))
                self._end_after_tagged = True

    def finish(self, tag: Tag, result: Ok) -> None:
        """Announce changes, then the tagged OK."""
        if self.state is not State.LOGOUT:
            self._announce()
        if self._end_after_tagged:
            self.write_raw(encode_response(TaggedResponse(tag, Status.OK, result.text,
                                                          result.code)))
            self._bye_sent = True
            self._action(Close())
            return
        self.send(TaggedResponse(tag, Status.OK, result.text, result.code))
        if self.state is State.LOGOUT:
            self._action(Close())

    def _tagged_error(self, tag: Tag, err: CommandError) -> None:
        if err.status is Status.NO:
            try:
                self._announce()
            except Exception:
                log.exception("session %s: sync after an error failed", self.session_id)
        response = TaggedResponse(tag, err.status, err.text, err.code)
        if self._end_after_tagged:
            self.write_raw(encode_response(response))
            self._bye_sent = True
            self._action(Close())
            return
        self.send(response)

    # -- continuations ----------------------------------------------------------------
    def expect_auth(self, tag: Tag) -> None:
        self._pending_auth = tag

    def _auth_continued(self, event: AuthenticateResponse | AuthenticateCancel) -> None:
        from imapha.server.commands import auth

        tag, self._pending_auth = self._pending_auth, None
        assert tag is not None
        if isinstance(event, AuthenticateCancel):
            self.send(TaggedResponse(tag, Status.BAD, "Authentication cancelled"))
            return
        try:
            result = auth.plain_response(self, event.data)
            self.finish(tag, result)
        except CommandError as err:
            self._tagged_error(tag, err)

    def _idle_line(self, event: ContinuationLine) -> None:
        tag, self.idling = self.idling, None
        assert tag is not None
        self._current = "IDLE"
        if event.line.strip().upper() == b"DONE":
            self.finish(tag, Ok("Idle completed"))
        else:
            self.send(TaggedResponse(tag, Status.BAD, "Expected DONE"))

    # -- failed logins ----------------------------------------------------------------
    def _penalty_key(self) -> str | None:
        """The address a failed login counts against, or none for a trusted proxy:
        the proxy penalizes the client's address itself, first hand (counting
        again here would double every delay), and speaks for many users."""
        if self.trusted_peer():
            return None
        return self.client_ip or None

    def penalize(self) -> None:
        """A login failed: its answer waits (2 s, doubling per failure from the
        same address within the hour, at most ``AUTH_PENALTY_MAX``), and no
        later command of this connection is read before it is sent."""
        key = self._penalty_key()
        if key is None:
            return
        now = time.monotonic()
        self.ctx.penalty.failed(key, now)
        delay = self.ctx.penalty.delay(key, now)
        if delay > 0:
            self._held = True
            self._action(Hold(delay))

    def login_succeeded(self) -> None:
        key = self._penalty_key()
        if key is not None:
            self.ctx.penalty.succeeded(key)

    def resume(self) -> list[Action]:
        """The hold is over: read the commands that waited."""
        self._held = False
        self._run()
        return self._take()

    # -- client identity --------------------------------------------------------------
    def trusted_peer(self) -> bool:
        try:
            addr = ipaddress.ip_address(self.peer)
        except ValueError:
            return False
        return any(addr in net for net in self.ctx.trusted_proxies)


_EVENT_NAMES: Final[dict[type, str]] = {
    Capability: "CAPABILITY", Noop: "NOOP", Logout: "LOGOUT", StartTLS: "STARTTLS",
    Login: "LOGIN", Authenticate: "AUTHENTICATE", Id: "ID",
}
