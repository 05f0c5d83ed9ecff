"""The control API over its Unix socket, against a real daemon process."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

from imapha.control import (
    ControlPermissionError,
    ControlTimeout,
    NoDaemon,
    VerbRegistry,
    request,
)
from tests.prereq import need_root
from tests.runtime.helpers import Daemons


def test_status_and_ready_over_the_socket(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    status = d.status()
    assert status["role"] == "proxy"
    assert status["node"] == "a"
    assert status["pid"] == d.pid
    assert status["version"]
    assert isinstance(status["uptime"], float) and status["uptime"] >= 0
    assert status["ready"] is True and status["draining"] is False
    assert status["pokes"] == 0  # the role's own field
    ready = d.get("/ready")
    assert (ready.status, ready.body["ready"]) == (200, True)

    assert d.post("/set-ready", {"ready": False, "reason": "no backend"}).ok
    ready = d.get("/ready")
    assert ready.status == 503
    assert ready.body == {"ready": False, "reason": "no backend", "role": "proxy", "node": "a"}

    assert d.post("/set-ready", {"ready": True}).ok
    assert d.post("/drain").body["changed"] is True
    assert d.post("/drain").body["changed"] is False
    assert d.get("/ready").body["reason"] == "draining"
    assert d.status()["draining"] is True
    assert d.post("/undrain").body["changed"] is True
    assert d.get("/ready").status == 200


def test_socket_mode_is_0660(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    st = d.socket.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_other_users_cannot_connect(config: Path, daemons: Daemons, root: Path) -> None:
    need_root()
    d = daemons.start(config, "a", "proxy")
    for directory in (root, root / "run", d.socket.parent):
        os.chmod(directory, 0o755)  # so that only the socket's own mode stands in the way
    groups = os.getgroups()
    # Become nobody:nogroup for this one request; the real ids stay root's.
    os.setgroups([])
    os.setegid(65534)
    os.seteuid(65534)
    try:
        with pytest.raises(ControlPermissionError, match="permission denied"):
            request(d.socket, "GET", "/status")
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)
    assert d.get("/status").ok


def test_errors_are_json_and_leak_nothing(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    r = d.get("/nope")
    assert (r.status, r.body) == (404, {"error": "no such verb: GET /nope"})
    r = d.get("/poke")
    assert r.status == 405 and "POST" in r.error
    r = d.post("/kick", {"user": 7})
    assert r.status == 400 and "user" in r.error
    r = d.post("/crash")
    assert (r.status, r.body) == (500, {"error": "internal error"})
    assert "secret internal detail" in d.log()  # logged, not sent
    # A body that is not JSON.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(d.socket))
        s.sendall(b"POST /kick HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Connection: close\r\n\r\n{x}")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    assert b'{"error": "request body is not JSON"}' in answer
    listing = d.get("/").body["verbs"]
    assert {"method": "POST", "path": "/kick", "summary": "end a user's sessions"} in listing


def test_second_daemon_on_the_same_socket_fails_clearly(config: Path, daemons: Daemons) -> None:
    first = daemons.start(config, "a", "proxy")
    second = daemons.spawn(config, "a", "proxy")
    assert second.wait_exit() == 1
    assert (f"another imapha proxy is already serving {first.socket} (pid {first.pid})"
            in second.log())
    assert first.status()["pid"] == first.pid  # the first one is untouched
    assert first.pid_file.read_text().strip() == str(first.pid)


def test_stale_socket_is_replaced(config: Path, daemons: Daemons, root: Path) -> None:
    path = root / "run" / "a" / "proxy.sock"
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as s:  # bound, never listening, closed: stale
        s.bind(str(path))
    with pytest.raises(NoDaemon, match="stale"):
        request(path, "GET", "/status")
    d = daemons.start(config, "a", "proxy")
    assert d.status()["pid"] == d.pid


def test_a_non_socket_at_the_path_is_left_alone(config: Path, daemons: Daemons,
                                               root: Path) -> None:
    path = root / "run" / "a" / "proxy.sock"
    path.parent.mkdir(parents=True)
    path.write_text("precious")
    d = daemons.spawn(config, "a", "proxy")
    assert d.wait_exit() == 1
    assert "exists and is not a socket" in d.log()
    assert path.read_text() == "precious"


def test_client_errors_say_what_went_wrong(root: Path) -> None:
    with pytest.raises(NoDaemon, match="does not exist"):
        request(root / "absent.sock", "GET", "/status")
    # Accepts (the kernel's backlog does) but never answers.
    path = root / "mute.sock"
    with socket.socket(socket.AF_UNIX) as mute:
        mute.bind(str(path))
        mute.listen(1)
        started = time.monotonic()
        with pytest.raises(ControlTimeout, match="no answer"):
            request(path, "GET", "/status", timeout=0.3)
        assert time.monotonic() - started < 3
    assert issubclass(ControlPermissionError, Exception)


def test_registry_refuses_duplicates_and_bad_paths() -> None:
    registry = VerbRegistry()
    registry.add("post", "/kick", lambda body: body)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("POST", "/kick", lambda body: body)
    with pytest.raises(ValueError, match="GET or POST"):
        registry.add("DELETE", "/x", lambda body: body)
    with pytest.raises(ValueError, match="must start with"):
        registry.add("GET", "x", lambda body: body)
    assert registry.methods_for("/kick") == ["POST"]
