"""Network-namespace primitives for the lab: names, iproute2 calls, membership, setns.

Theory of operation
-------------------
Every lab object lives in a *named* network namespace (``/run/netns/NAME``, made
by ``ip netns add``) whose name is ``<prefix>-<role>``, the prefix being ``ih``
plus five random lowercase letters or digits.  Nothing is ever created in the
caller's own namespace: veth pairs are made inside the switch namespace with
their peer end born directly in the host namespace, so deleting the namespaces
deletes every link, and a run that was SIGKILLed leaves only prefixed
namespaces behind, which :func:`lab_namespaces` finds by name.

A process belongs to a namespace when ``/proc/PID/ns/net`` is the same nsfs
inode as ``/run/netns/NAME``; :func:`pids_in` scans ``/proc`` that way, which
also finds processes a daemon forked that the lab never saw start.

:func:`entered` switches the *calling thread* (network namespaces are per
thread for ``setns(2)``) into a namespace and back, so a socket created inside
the block lives in the lab host's namespace for the rest of its life.

iproute2 is driven through subprocess; several commands for one namespace go
through one ``ip -n NAME -batch -`` process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import string
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX_RE = re.compile(r"^ih[a-z0-9]{5}$")
"""A lab prefix: short enough that ``prefix + host(7) + digit`` fits IFNAMSIZ - 1."""
NAMESPACE_RE = re.compile(r"^(ih[a-z0-9]{5})-([a-z][a-z0-9]{0,6})$")
"""The name of every namespace the lab creates: ``<prefix>-<role>``."""
IP_TIMEOUT = 20.0
"""Bound on any single iproute2/nft invocation, in seconds."""

_CLONE_NEWNET = 0x40000000


class LabError(Exception):
    """A lab operation failed; the text says which and why."""


class CommandFailed(LabError):
    """An external command (iproute2, nft, a command run in a host) exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        super().__init__(f"{' '.join(argv)!r} exited {returncode}: {output.strip()[-2000:]}")


def new_prefix() -> str:
    """Return a fresh random lab prefix such as ``ihk3z9q``."""
    alphabet = string.ascii_lowercase + string.digits
    return "ih" + "".join(random.SystemRandom().choice(alphabet) for _ in range(5))


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise LabError(f"lab prefix {prefix!r} must be 'ih' and 5 of [a-z0-9]")
    return prefix


def run_cmd(argv: Sequence[str], *, stdin: str | None = None, timeout: float = IP_TIMEOUT) -> str:
    """Run a short administrative command; return stdout or raise CommandFailed."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)!r} did not finish within {timeout} s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]!r} is not installed") from exc
    if done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stderr + done.stdout)
    return done.stdout


def ip_batch(netns: str | None, commands: Sequence[str]) -> None:
    """Run iproute2 commands (without the leading ``ip``) in one process."""
    if not commands:
        return
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    run_cmd(argv, stdin="\n".join(commands) + "\n")


def add(name: str) -> None:
    run_cmd(["ip", "netns", "add", name])


def delete(names: Sequence[str]) -> None:
    """Delete namespaces; one missing is not an error (it is already gone)."""
    present = [n for n in names if (NETNS_DIR / n).exists()]
    if not present:
        return
    try:
        ip_batch(None, [f"netns del {n}" for n in present])
    except CommandFailed:
        # -batch stops at the first failure; retry one by one and report the rest.
        failures = []
        for name in present:
            if not (NETNS_DIR / name).exists():
                continue
            try:
                run_cmd(["ip", "netns", "del", name])
            except CommandFailed as exc:
                failures.append(str(exc))
        if failures:
            raise LabError("; ".join(failures)) from None


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def all_namespaces() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def lab_namespaces(prefix: str | None = None) -> list[str]:
    """Namespaces named like the lab's, all of them or those of one prefix."""
    found = []
    for name in all_namespaces():
        match = NAMESPACE_RE.match(name)
        if match and (prefix is None or match.group(1) == prefix):
            found.append(name)
    return found


def _ns_identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in(name: str) -> list[int]:
    """PIDs of live processes whose network namespace is the named one.

    The caller's own process is never listed, even if one of its threads is
    inside the namespace at the moment.  Zombies have no namespace left and are
    not listed.
    """
    target = _ns_identity(NETNS_DIR / name)
    if target is None:
        return []
    me = os.getpid()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid != me and _ns_identity(f"/proc/{pid}/ns/net") == target:
            pids.append(pid)
    return sorted(pids)


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may hold ')'.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] not in {"Z", "X"}


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside the named network namespace.

    Sockets opened in the block stay in that namespace after it ends.  Other
    threads are unaffected.  Only network state changes (not mounts), so paths
    and ``/proc/self`` keep their meaning.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def root_links(prefix: str | None = None) -> list[str]:
    """Links in the caller's namespace whose names carry a lab prefix."""
    found = []
    for path in Path("/sys/class/net").iterdir():
        name = path.name
        if re.match(r"^ih[a-z0-9]{5}", name) and (prefix is None or name.startswith(prefix)):
            found.append(name)
    return sorted(found)
