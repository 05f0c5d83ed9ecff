"""The control API every imapha daemon serves: HTTP/1.1 + JSON on a Unix socket.

Theory of operation
-------------------
Each daemon listens on one Unix socket (``{run_dir}/{role}.sock`` unless the
config says otherwise), created with mode 0660 so that root and the socket's
group may talk to it and nobody else. The API is a flat table of *verbs*: an
HTTP method and a path mapped to a handler. Every daemon has the same four
(``GET /status``, ``GET /ready``, ``POST /drain``, ``POST /undrain``, added by
:mod:`imapha.daemon`) and adds its own (``POST /kick`` with ``{"user": ...}``,
``POST /drain-backend`` with ``{"name": ...}``...). ``GET /`` lists the verbs.

A handler takes the request body (a JSON object, ``{}`` when empty) and returns
a JSON object, a :class:`Reply` (to choose the status code, as ``/ready`` does
with 503), or a ``Deferred`` of either. It signals a refusal by raising
:class:`ControlError` (status + short message). Anything else it raises is a
bug: its text and traceback go to the log, and the client gets
``500 {"error": "internal error"}``, never the exception's text.

Start-up on a path that already exists: a socket a live daemon answers on is
an error naming that daemon's pid (two daemons of a role on one node would
both think they own the VIPs or the leases); a socket nobody listens on
(``ECONNREFUSED``: the previous daemon was killed) is stale and replaced
silently; anything that is not a socket is left alone and reported. The check
and the bind are not atomic: two daemons started in the same millisecond may
both see a stale path; systemd never does that.

The client side (:func:`request`) is deliberately blocking and tiny
(``http.client`` over ``AF_UNIX``) so ``imapha ctl`` and tests need no reactor.
Its errors say which of the three usual things went wrong: no daemon, no
permission, or no answer in time.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

# The server half imports twisted.internet and twisted.web only when used: the
# client half (``imapha ctl``) then starts in a third of the time.
from twisted.web.resource import Resource

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IListeningPort, IReactorUNIX
    from twisted.python.failure import Failure
    from twisted.web.server import Site

log = logging.getLogger(__name__)

JsonObject: TypeAlias = dict[str, Any]

SOCKET_MODE: Final = 0o660
MAX_BODY: Final = 1 << 20  # control requests are tiny; refuse anything silly
DEFAULT_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Reply:
    """A handler's answer when the status code is not 200."""

    body: JsonObject
    status: int = HTTPStatus.OK


class ControlError(Exception):
    """A handler's refusal: sent as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


HandlerResult: TypeAlias = "JsonObject | Reply | Deferred[JsonObject] | Deferred[Reply]"
Handler: TypeAlias = Callable[[JsonObject], HandlerResult]


@dataclass(frozen=True)
class Verb:
    method: str
    path: str
    handler: Handler
    summary: str = ""


class VerbRegistry:
    """The (method, path) -> handler table a daemon serves."""

    def __init__(self) -> None:
        self._verbs: dict[tuple[str, str], Verb] = {}

    def add(self, method: str, path: str, handler: Handler, summary: str = "") -> None:
        method = method.upper()
        if method not in {"GET", "POST"}:
            raise ValueError(f"control verbs are GET or POST, not {method}")
        if not path.startswith("/") or (path != path.rstrip("/") and path != "/"):
            raise ValueError(f"control path must start with '/' and not end with one: {path!r}")
        key = (method, path)
        if key in self._verbs:
            raise ValueError(f"control verb {method} {path} is already registered")
        self._verbs[key] = Verb(method, path, handler, summary)

    def add_all(self, verbs: Iterable[Verb]) -> None:
        for verb in verbs:
            self.add(verb.method, verb.path, verb.handler, verb.summary)

    def lookup(self, method: str, path: str) -> Verb | None:
        return self._verbs.get((method.upper(), path))

    def methods_for(self, path: str) -> list[str]:
        return sorted(m for (m, p) in self._verbs if p == path)

    def listing(self) -> list[JsonObject]:
        return [
            {"method": v.method, "path": v.path, "summary": v.summary}
            for v in sorted(self._verbs.values(), key=lambda v: (v.path, v.method))
        ]


def _error_body(message: str) -> JsonObject:
    return {"error": message}


class ControlResource(Resource):
    """Dispatches every request to the registry; all answers are JSON."""

    isLeaf = True

    def __init__(self, registry: VerbRegistry,
                 on_reply: Callable[[str, int], None] | None = None) -> None:
        cast(Any, super()).__init__()
        self.registry = registry
        self.on_reply = on_reply

    def render(self, request: Any) -> bytes | int:
        method = (request.method or b"").decode("ascii", "replace")
        path = (request.path or b"/").decode("utf-8", "replace")
        if len(path) > 1:
            path = path.rstrip("/")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _f: gone.append(True))
        from twisted.internet import defer
        from twisted.web.server import NOT_DONE_YET

        result: Deferred[Reply] = defer.maybeDeferred(self._dispatch, request, method, path)
        result.addErrback(self._failed, method, path)
        result.addCallback(self._send, request, gone)
        if self.on_reply is not None:
            known = path == "/" or self.registry.lookup(method, path) is not None
            label = f"{method} {path}" if known else "unknown"
            on_reply = self.on_reply

            def count(status: Any) -> None:
                on_reply(label, int(status))

            result.addCallback(count)
        result.addErrback(lambda f: log.error("control reply failed: %s", f.getTraceback()))
        return NOT_DONE_YET

    def _dispatch(self, request: Any, method: str, path: str) -> Any:
        if method == "GET" and path == "/":
            return {"verbs": self.registry.listing()}
        verb = self.registry.lookup(method, path)
        if verb is None:
            allowed = self.registry.methods_for(path)
            if allowed:
                request.setHeader(b"Allow", ", ".join(allowed).encode())
                raise ControlError(HTTPStatus.METHOD_NOT_ALLOWED,
                                   f"{method} not allowed on {path} (use {', '.join(allowed)})")
            raise ControlError(HTTPStatus.NOT_FOUND, f"no such verb: {method} {path}")
        body = self._body(request)
        return verb.handler(body)

    @staticmethod
    def _body(request: Any) -> JsonObject:
        length = request.getHeader(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise ControlError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        content = request.content
        raw = content.read(MAX_BODY + 1) if content is not None else b""
        if len(raw) > MAX_BODY:
            raise ControlError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ControlError(HTTPStatus.BAD_REQUEST, "request body is not JSON") from None
        if not isinstance(body, dict):
            raise ControlError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
        return cast(JsonObject, body)

    @staticmethod
    def _failed(failure: Failure, method: str, path: str) -> Reply:
        exc = failure.value
        if isinstance(exc, ControlError):
            return Reply(_error_body(exc.message), exc.status)
        log.error("control %s %s failed: %s", method, path, failure.getTraceback())
        return Reply(_error_body("internal error"), HTTPStatus.INTERNAL_SERVER_ERROR)

    @staticmethod
    def _send(result: Any, request: Any, gone: list[bool]) -> int:
        reply = result if isinstance(result, Reply) else Reply(result)
        if gone:
            return int(reply.status)
        try:
            payload = json.dumps(reply.body, sort_keys=True, default=str).encode() + b"\n"
        except (TypeError, ValueError):
            log.exception("control reply is not JSON-serialisable")
            reply = Reply(_error_body("internal error"), HTTPStatus.INTERNAL_SERVER_ERROR)
            payload = json.dumps(reply.body).encode() + b"\n"
        request.setResponseCode(int(reply.status))
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        request.write(payload)
        request.finish()
        return int(reply.status)


@cache
def _quiet_site_class() -> type[Site]:
    from twisted.web.server import Site

    class QuietSite(Site):
        """A Site that does not write an access log line per request."""

        noisy = False
        name = "http"

        def log(self, request: Any) -> None:
            pass

        def logPrefix(self) -> str:
            return self.name

    return QuietSite


def quiet_site(resource: Resource, name: str) -> Site:
    """A twisted.web Site for ``resource``, named ``name`` in logs, with no access log."""
    site: Any = cast(Any, _quiet_site_class())(resource)
    site.name = name
    return cast("Site", site)


class ControlSocketError(Exception):
    """The control socket cannot be set up; the message says why and where."""


class AlreadyServing(ControlSocketError):
    """Another live daemon answers on the control socket we were told to use."""


#: sockaddr_un.sun_path is 108 bytes on Linux, NUL included.
MAX_SOCKET_PATH: Final = 107


class ControlServer:
    """Serves a :class:`VerbRegistry` on a Unix socket; see the module docstring."""

    def __init__(self, reactor: IReactorUNIX, path: Path, registry: VerbRegistry,
                 *, role: str) -> None:
        self.reactor = reactor
        self.path = Path(path)
        self.registry = registry
        self.role = role
        self.on_reply: Callable[[str, int], None] | None = None
        self._port: IListeningPort | None = None

    def prepare_path(self) -> None:
        """Fail if a live daemon owns the path; remove it if stale. Blocking, brief."""
        length = len(os.fsencode(self.path))
        if length > MAX_SOCKET_PATH:
            raise ControlSocketError(f"control socket path {self.path} is {length} bytes long; "
                                     f"Unix sockets allow {MAX_SOCKET_PATH}: shorten run_dir")
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"{self.path} exists and is not a socket; not touching it")
        try:
            status = request(self.path, "GET", "/status", timeout=2.0)
        except NoDaemon:
            log.info("removing stale control socket %s", self.path)
            self.path.unlink(missing_ok=True)
            return
        except ControlClientError as exc:
            raise AlreadyServing(f"{self.path} is in use and does not answer properly: {exc}"
                                 ) from None
        pid = status.body.get("pid", "?")
        role = status.body.get("role", "daemon")
        raise AlreadyServing(
            f"another imapha {role} is already serving {self.path} (pid {pid})"
        )

    def start(self) -> Deferred[IListeningPort]:
        """Check the path, then listen. Errback with ControlSocketError or CannotListenError."""
        from twisted.internet import defer
        from twisted.internet.endpoints import UNIXServerEndpoint

        try:
            self.prepare_path()
        except (ControlSocketError, OSError):
            return defer.fail()
        site = quiet_site(ControlResource(self.registry, self.on_reply), "control API")
        endpoint: Any = cast(Any, UNIXServerEndpoint)(self.reactor, str(self.path),
                                                       mode=SOCKET_MODE)
        listening: Deferred[IListeningPort] = endpoint.listen(site)

        def listening_ok(port: IListeningPort) -> IListeningPort:
            self._port = port
            log.debug("control API on %s", self.path)
            return port

        return listening.addCallback(listening_ok)

    def stop(self) -> Deferred[None]:
        """Stop listening and remove the socket (Twisted leaves it behind)."""
        from twisted.internet import defer

        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        stopped: Deferred[None] = defer.maybeDeferred(cast(Any, port).stopListening)

        def unlink(_: object) -> None:
            self.path.unlink(missing_ok=True)

        stopped.addBoth(unlink)
        return stopped


# ---------------------------------------------------------------- client side


class ControlClientError(Exception):
    """A control request did not get an answer; subclasses say why."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class NoDaemon(ControlClientError):
    """Nothing listens on the socket (absent, or stale: connection refused)."""


class ControlPermissionError(ControlClientError):
    """The socket is there but we may not connect (mode 0660: root or its group)."""


class ControlTimeout(ControlClientError):
    """The daemon accepted but did not answer in time."""


class ControlProtocolError(ControlClientError):
    """Something answered, but not with the control API's HTTP + JSON."""


@dataclass(frozen=True)
class ControlResponse:
    status: int
    body: JsonObject

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        return str(self.body.get("error", f"HTTP {self.status}"))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.unix_path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def request(path: str | Path, method: str, target: str, body: JsonObject | None = None,
            *, timeout: float = DEFAULT_TIMEOUT) -> ControlResponse:
    """One blocking request to a daemon's control socket.

    Returns the response whatever its status (a 409 or 503 is an answer);
    raises :class:`ControlClientError` when there is no answer.
    """
    path = Path(path)
    conn = _UnixHTTPConnection(path, timeout)
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    try:
        conn.request(method.upper(), target, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    except FileNotFoundError:
        raise NoDaemon(path, f"no daemon: {path} does not exist") from None
    except ConnectionRefusedError:
        raise NoDaemon(path, f"no daemon listening on {path} (stale socket)") from None
    except PermissionError:
        raise ControlPermissionError(
            path, f"permission denied on {path} (root or the socket's group may connect)"
        ) from None
    except TimeoutError:
        raise ControlTimeout(path, f"no answer from {path} within {timeout:g}s") from None
    except OSError as exc:
        if exc.errno in {errno.ENOTSOCK, errno.ECONNRESET, errno.EPIPE}:
            raise NoDaemon(path, f"no daemon on {path}: {os.strerror(exc.errno)}") from None
        raise ControlClientError(path, f"cannot reach {path}: {exc.strerror or exc}") from None
    except http.client.HTTPException as exc:
        raise ControlProtocolError(path, f"bad HTTP answer from {path}: {exc!r}") from None
    finally:
        conn.close()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ControlProtocolError(path, f"non-JSON answer from {path} (HTTP {status})") from None
    if not isinstance(data, dict):
        raise ControlProtocolError(path, f"answer from {path} is not a JSON object")
    return ControlResponse(status, cast(JsonObject, data))
