"""A real Dovecot 2.3 as a test and benchmark backend.

Theory of operation
-------------------
``DovecotServer`` writes a self-contained configuration file into ``root_dir``
(its own ``base_dir``, ``state_dir`` and log file, a ``passwd-file`` with
SHA512-CRYPT hashes made by ``doveadm pw``) and runs ``dovecot -F -c FILE`` in
the foreground, so the master's PID is the PID we started and nothing of the
system's Dovecot (``/etc/dovecot``, ``/run/dovecot``) is touched.

Ports: each listener gets a port the OS chose (bind port 0, close, hand the
number to Dovecot). Another process may grab it in between; Dovecot then fails
at start-up with "Address already in use" and we retry with fresh ports, a
bounded number of times.

Users: Dovecot refuses mail access as root ("Mail access not allowed for
root"), so when the tests run as root the mail processes run as the Debian
``mail`` user (uid/gid 8) and ``maildir_root`` is handed to that user; the
auth process reads the passwd-file as ``dovecot``. Every directory above
``maildir_root`` and ``root_dir`` must then be traversable by those users:
pytest's ``tmp_path`` (under a 0700 directory) is not, which is checked up
front with a clear error; ``traversable_dir()`` makes one that is. Not as
root, everything runs as the current user.

Readiness: ``start()`` returns once the IMAP greeting can be read (bounded).
With a custom ``spawn`` (a process runner that starts Dovecot inside a network
namespace) the test process may not reach the listen address, so readiness is
then the listening socket showing up in ``/proc/<pid>/net/tcp``, which is the
namespace's own table.

Stopping: ``stop()`` sends SIGTERM to the master (which ends its children) and
SIGKILL after a bound; ``kill()`` SIGKILLs the master and every descendant it
had, by PID, the way a crashed host loses them all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

__all__ = [
    "DovecotError",
    "DovecotServer",
    "hash_password",
    "traversable_dir",
]

DOVECOT_BIN = "/usr/sbin/dovecot"
DOVEADM_BIN = "/usr/bin/doveadm"
#: Bound on start attempts when a chosen port was taken by someone else meanwhile.
START_ATTEMPTS = 5
#: Seconds to wait for the greeting after each start attempt.
START_TIMEOUT = 15.0
#: Concurrent IMAP sessions the instance allows (per user and address, and in all).
MAX_SESSIONS = 1000
#: Seconds between SIGTERM and SIGKILL in ``stop()``.
STOP_GRACE = 5.0


class DovecotError(RuntimeError):
    """Dovecot could not be configured or did not start; the text names why."""


class Process(Protocol):
    """What we need of a started process: ``subprocess.Popen`` and the lab's
    ``LabProcess`` both fit. Whether it ended is asked through ``poll()`` when it
    has one, else its ``returncode`` property (see ``_poll``)."""

    @property
    def pid(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int: ...


def _poll(proc: Process) -> int | None:
    poll = getattr(proc, "poll", None)
    if callable(poll):
        result: int | None = poll()
        return result
    code: int | None = getattr(proc, "returncode", None)
    return code


Spawn = Callable[[list[str]], Process]


@dataclass(frozen=True)
class _Identity:
    """Who the mail processes run as, and the login/internal service users."""

    mail_user: str
    mail_uid: int
    mail_gid: int
    login_user: str
    internal_user: str


def _identity() -> _Identity:
    if os.geteuid() == 0:
        mail = pwd.getpwnam("mail")
        return _Identity("mail", mail.pw_uid, mail.pw_gid, "dovenull", "dovecot")
    me = pwd.getpwuid(os.geteuid())
    return _Identity(me.pw_name, me.pw_uid, me.pw_gid, me.pw_name, me.pw_name)


def hash_password(password: str, scheme: str = "SHA512-CRYPT") -> str:
    """The ``{SCHEME}hash`` string Dovecot's passwd-file expects, from ``doveadm pw``."""
    if "\n" in password or "\0" in password:
        raise ValueError("a password cannot hold a newline or NUL")
    proc = subprocess.run(
        [DOVEADM_BIN, "pw", "-s", scheme, "-p", password],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise DovecotError(f"doveadm pw failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def traversable_dir(prefix: str = "imapha-dovecot-") -> Path:
    """A fresh directory under /tmp that the ``mail`` user can traverse (mode 0755).

    The caller removes it. Use it as ``root_dir`` (and for ``maildir_root``) in tests
    that run as root: pytest's ``tmp_path`` sits below a 0700 directory.
    """
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def _check_traversable(path: Path, user: str) -> None:
    """Raise unless ``user`` can reach ``path`` (each ancestor has x for it)."""
    account = pwd.getpwnam(user)
    if account.pw_uid == os.geteuid() or os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == account.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == account.pw_gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise DovecotError(
                f"{parent} (mode {stat.S_IMODE(st.st_mode):o}) is not traversable by user "
                f"{user!r}, which Dovecot runs a service as; use "
                "imapha.lab.dovecot.traversable_dir() instead of a tmp_path below a 0700 dir"
            )


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            # An address of another namespace: any free number of ours is as good a guess.
            sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return int(sock.getsockname()[1])


def _default_spawn(log_path: Path) -> Spawn:
    def spawn(argv: list[str]) -> Process:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    return spawn


def _descendants(pid: int) -> list[int]:
    """PIDs of every living descendant of ``pid`` (one scan of /proc, then a tree walk)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = raw[raw.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (SIGKILL takes a moment)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2 :].split()[0] != "Z"


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of ``pid``."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class DovecotServer:
    """One Dovecot instance with its own config, users and Maildir root.

    ``with DovecotServer(root, users={"alice": "pw"}, maildir_root=root / "mail") as dv:``
    then ``imaplib.IMAP4(dv.listen, dv.imap_port)``.
    """

    def __init__(
        self,
        root_dir: Path | str,
        users: Mapping[str, str],
        maildir_root: Path | str | None = None,
        *,
        port: int = 0,
        listen: str = "127.0.0.1",
        ssl: tuple[Path | str, Path | str] | None = None,
        lmtp: bool = False,
        haproxy: bool = False,
        trusted_networks: Sequence[str] = ("127.0.0.0/8",),
        extra_config: str = "",
        proxy_mode: bool = False,
        proxy_to: tuple[str, int] | None = None,
        spawn: Spawn | None = None,
        ready_check: Callable[[DovecotServer], bool] | None = None,
    ) -> None:
        self.root_dir = Path(root_dir).absolute()
        self.maildir_root = (
            Path(maildir_root).absolute() if maildir_root else self.root_dir / "mail"
        )
        self.users = dict(users)
        self.listen = listen
        self.ssl = ssl
        self.lmtp = lmtp
        self.haproxy = haproxy
        self.trusted_networks = tuple(trusted_networks)
        self.extra_config = extra_config
        self.proxy_mode = proxy_mode
        self.proxy_to = proxy_to
        if proxy_mode and proxy_to is None:
            raise ValueError("proxy_mode needs proxy_to=(host, port) of the backend")
        self._fixed_port = port
        self._spawn = spawn
        self._ready_check = ready_check
        self.identity = _identity()
        self.config_path = self.root_dir / "dovecot.conf"
        self.passwd_path = self.root_dir / "passwd"
        self.log_path = self.root_dir / "dovecot.log"
        self.base_dir = self.root_dir / "base"
        self.state_dir = self.root_dir / "state"
        self.imap_port = 0
        self.imaps_port = 0
        self.lmtp_port = 0
        self.haproxy_port = 0
        self._proc: Process | None = None

    # -- public surface ----------------------------------------------------------
    @property
    def pid(self) -> int:
        if self._proc is None:
            raise DovecotError("Dovecot is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and _poll(self._proc) is None

    @property
    def mail_uid(self) -> int:
        return self.identity.mail_uid

    @property
    def mail_gid(self) -> int:
        return self.identity.mail_gid

    def maildir(self, user: str) -> Path:
        """The Maildir of ``user`` (``mail_location``)."""
        return self.maildir_root / user / "Maildir"

    def start(self) -> DovecotServer:
        if self.running:
            return self
        self._prepare_dirs()
        self._write_passwd()
        last_error = ""
        for _attempt in range(START_ATTEMPTS):
            self._choose_ports()
            self.config_path.write_text(self.render_config())
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            spawn = self._spawn or _default_spawn(self.log_path)
            self._proc = spawn([DOVECOT_BIN, "-F", "-c", str(self.config_path)])
            if self._wait_ready():
                return self
            last_error = self._log_since(offset)
            self._terminate(grace=2.0)
            if "in use" not in last_error:
                break
        raise DovecotError(f"Dovecot did not start; its log says:\n{last_error}")

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM the master, SIGKILL whatever is left after ``grace`` seconds."""
        self._terminate(grace)

    def kill(self) -> None:
        """SIGKILL the master and all its descendants at once (a crash). The master
        is stopped first so it cannot fork while we collect its family; returns once
        every one of them is gone (bounded)."""
        if self._proc is None:
            return
        master = self._proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGSTOP)
        pids = [master, *_descendants(master)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._proc = None
        self._clear_pidfile()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------
    def render_config(self) -> str:
        ident = self.identity
        protocols = "imap lmtp" if self.lmtp else "imap"
        lines = [
            "# written by imapha.lab.dovecot; one throw-away instance",
            f"base_dir = {self.base_dir}",
            f"state_dir = {self.state_dir}",
            f"instance_name = imapha-{self.root_dir.name}",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            f"protocols = {protocols}",
            f"listen = {self.listen}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            f"login_trusted_networks = {' '.join(self.trusted_networks)}",
            f"default_login_user = {ident.login_user}",
            f"default_internal_user = {ident.internal_user}",
            f"first_valid_uid = {min(ident.mail_uid, 500)}",
            f"first_valid_gid = {min(ident.mail_gid, 500)}",
            f"mail_uid = {ident.mail_uid}",
            f"mail_gid = {ident.mail_gid}",
            f"mail_location = maildir:{self.maildir_root}/%u/Maildir",
            "mail_fsync = always",
            "lmtp_save_to_detail_mailbox = no",
            "ssl_client_ca_dir = /etc/ssl/certs",
        ]
        if self.haproxy:
            lines.append(f"haproxy_trusted_networks = {' '.join(self.trusted_networks)}")
        if self.ssl is None:
            lines.append("ssl = no")
        else:
            cert, key = self.ssl
            lines += ["ssl = yes", f"ssl_cert = <{cert}", f"ssl_key = <{key}"]
        passdb_args = f"scheme=SHA512-CRYPT username_format=%u {self.passwd_path}"
        lines += [
            "passdb {",
            "  driver = passwd-file",
            f"  args = {passdb_args}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={ident.mail_uid} gid={ident.mail_gid} home={self.maildir_root}/%u",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            f"    address = {self.listen}",
            f"    port = {self.imap_port}",
            "  }",
            "  inet_listener imaps {",
            f"    address = {self.listen}",
            f"    port = {self.imaps_port}",
            "  }",
        ]
        if self.haproxy:
            lines += [
                "  inet_listener imap_haproxy {",
                f"    address = {self.listen}",
                f"    port = {self.haproxy_port}",
                "    haproxy = yes",
                "  }",
            ]
        lines += ["}"]
        if self.lmtp:
            lines += [
                "service lmtp {",
                "  inet_listener lmtp {",
                f"    address = {self.listen}",
                f"    port = {self.lmtp_port}",
                "  }",
                "}",
            ]
        # Throw-away instances used by tests and benchmarks: no failed-login delay,
        # room for many sessions of one user from one address (a proxy in front).
        lines += [
            "auth_failure_delay = 0",
            "login_proxy_max_disconnect_delay = 0",
            "protocol imap {",
            f"  mail_max_userip_connections = {MAX_SESSIONS}",
            "}",
            "service imap {",
            f"  process_limit = {MAX_SESSIONS}",
            "}",
            "service imap-login {",
            "  service_count = 0",
            "  process_min_avail = 1",
            f"  client_limit = {MAX_SESSIONS}",
            "}",
        ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _write_passwd(self) -> None:
        rows = []
        for name, password in sorted(self.users.items()):
            if not name or any(c in name for c in ":\n\0/") or name.startswith("."):
                raise ValueError(f"user name {name!r} is not usable as a passwd-file user")
            extra = ""
            if self.proxy_mode and self.proxy_to is not None:
                host, port = self.proxy_to
                extra = f"proxy=y host={host} port={port}"
            rows.append(f"{name}:{hash_password(password)}::::::{extra}")
        self.passwd_path.write_text("\n".join(rows) + "\n")
        # The auth process reads it as the internal user.
        self.passwd_path.chmod(0o640)
        if os.geteuid() == 0:
            os.chown(self.passwd_path, 0, pwd.getpwnam(self.identity.internal_user).pw_gid)

    def _prepare_dirs(self) -> None:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.base_dir, self.state_dir):
            path.mkdir(exist_ok=True)
        if not self.proxy_mode:
            self.maildir_root.mkdir(parents=True, exist_ok=True)
            _check_traversable(self.maildir_root, self.identity.mail_user)
            st = self.maildir_root.stat()
            if st.st_uid != self.identity.mail_uid and os.geteuid() == 0:
                os.chown(self.maildir_root, self.identity.mail_uid, self.identity.mail_gid)
            # The mail processes talk to sockets in base_dir (a proxy has none).
            _check_traversable(self.base_dir, self.identity.mail_user)
        # The auth process reads the passwd-file as the internal user.
        _check_traversable(self.root_dir, self.identity.internal_user)

    def _choose_ports(self) -> None:
        host = self.listen if self.listen not in ("*", "::", "0.0.0.0") else "127.0.0.1"
        self.imap_port = self._fixed_port or _free_port(host)
        self.imaps_port = _free_port(host) if self.ssl is not None else 0
        self.lmtp_port = _free_port(host) if self.lmtp else 0
        self.haproxy_port = _free_port(host) if self.haproxy else 0

    # -- process control ---------------------------------------------------------
    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _poll(self._proc) is not None:
                return False
            if self._ready_check is not None:
                ready = self._ready_check(self)
            elif self._spawn is not None:
                ready = self._listening_all()
            else:
                ready = self._greeting_readable()
            if ready:
                return True
            time.sleep(0.05)
        return False

    def _wanted_ports(self) -> set[int]:
        ports = {self.imap_port, self.imaps_port, self.lmtp_port, self.haproxy_port}
        ports.discard(0)
        return ports

    def _listening_all(self) -> bool:
        return self._wanted_ports() <= _listening_ports(self.pid)

    def _greeting_readable(self) -> bool:
        if not self._wanted_ports() <= _listening_ports(self.pid):
            return False
        host = self.listen if self.listen not in ("*", "::", "0.0.0.0") else "127.0.0.1"
        try:
            with socket.create_connection((host, self.imap_port), timeout=2.0) as sock:
                sock.settimeout(2.0)
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if _poll(proc) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        else:
            proc.wait()
        # The master is gone; a child that outlived it is reaped by PID.
        for pid in _descendants(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc = None
        self._clear_pidfile()

    def _clear_pidfile(self) -> None:
        # A master killed by SIGKILL leaves master.pid; the next start would refuse.
        with contextlib.suppress(FileNotFoundError):
            (self.base_dir / "master.pid").unlink()

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return "(no log written)"
            raise
