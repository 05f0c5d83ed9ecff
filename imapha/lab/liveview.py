"""The demo's live status view: who holds which VIP, health, sessions, failovers.

It redraws every half second and acts on single keys, each action run in a
background thread so the view keeps moving while a node dies or drains:
``k``/``K`` kill node a/b (processes SIGKILLed, cable pulled), ``s``/``S``
start it again, ``d``/``D`` drain (``imapha ctl drain``), ``u``/``U``
undrain, ``q`` quit. Everything it shows is read the way an operator would:
VIP holders from the kernel, the rest from the daemons' control APIs.
"""

from __future__ import annotations

import collections
import select
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable

from imapha import control
from imapha.lab.cluster import NODES, VIPS, Cluster

KEYS = "k/K kill a/b  s/S start a/b  d/D drain a/b  u/U undrain a/b  q quit"


class LiveView:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.events: collections.deque[str] = collections.deque(maxlen=8)
        self.failovers = 0
        self._holders: dict[str, tuple[str, ...]] = {}
        self._busy = threading.Lock()

    def note(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _status(self, node: str, role: str) -> dict[str, object] | None:
        try:
            reply = control.request(self.cluster.control_socket(node, role), "GET", "/status",
                                    timeout=0.5)
        except control.ControlClientError:
            return None
        return reply.body

    def snapshot(self) -> list[str]:
        lines = [f"imapha demo, live   keys: {KEYS}", "",
                 f"{'VIP':<7}{'address':<15}{'home':<6}held by"]
        for name, address, _, home in VIPS:
            holders = tuple(self.cluster.vip_holders(address))
            before = self._holders.get(name)
            if before is not None and before != holders:
                self.note(f"{name} moved {'+'.join(before) or 'nowhere'} -> "
                          f"{'+'.join(holders) or 'nowhere'}")
                if holders and before:
                    self.failovers += 1
            self._holders[name] = holders
            shown = ", ".join(holders) or "NOBODY"
            lines.append(f"{name:<7}{address:<15}{home:<6}{shown}")
        header = "backends (as its proxy sees them)"
        lines += ["", f"{'node':<6}{'proxy':<11}{'sessions':<10}{header:<36}{'backend':<10}vipd"]
        for node in NODES:
            if self.cluster.nodes[node].dead:
                lines.append(f"{node:<6}DEAD (killed, unplugged)")
                continue
            proxy = self._status(node, "proxy")
            state = {r: self._state(node, r) for r in ("proxy", "backend", "vipd")}
            sessions = str(proxy.get("sessions", "?")) if proxy else "-"
            backends = proxy.get("backends", {}) if proxy else {}
            seen = ", ".join(
                f"{b} {'up' if isinstance(v, dict) and v.get('up') else 'DOWN'}"
                for b, v in sorted(backends.items())) if isinstance(backends, dict) else ""
            lines.append(f"{node:<6}{state['proxy']:<11}{sessions:<10}{seen:<36}"
                         f"{state['backend']:<10}{state['vipd']}")
        lines += ["", f"failovers seen: {self.failovers}", "recent events:"]
        lines += [f"  {e}" for e in self.events]
        return lines

    def _state(self, node: str, role: str) -> str:
        status = self._status(node, role)
        if status is None:
            return "down"
        if status.get("draining"):
            return "drained"
        return "ready" if status.get("ready") else "not ready"

    def _act(self, what: str, fn: Callable[[], object]) -> None:
        def run() -> None:
            if not self._busy.acquire(blocking=False):
                self.note(f"busy, ignored: {what}")
                return
            try:
                self.note(what)
                fn()
                self.note(f"done: {what}")
            except Exception as exc:  # shown to the user, the view goes on
                self.note(f"failed: {what}: {exc}")
            finally:
                self._busy.release()

        threading.Thread(target=run, daemon=True).start()

    def _ctl(self, action: str, node: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "imapha", "ctl", "--config", str(self.cluster.config),
             action, node], capture_output=True, text=True, timeout=120, check=False)
        last = (result.stdout.strip().splitlines() or [""])[-1]
        self.note(f"imapha ctl {action} {node}: exit {result.returncode} {last}")

    def key(self, ch: str) -> bool:
        """Act on one key; False to quit."""
        node = "a" if ch.islower() else "b"
        low = ch.lower()
        if low == "q":
            return False
        if low == "k":
            self._act(f"kill node {node}", lambda: self.cluster.kill_node(node))
        elif low == "s":
            self._act(f"start node {node}", lambda: self.cluster.start_node(node))
        elif low == "d":
            self._act(f"drain node {node}", lambda: self._ctl("drain", node))
        elif low == "u":
            self._act(f"undrain node {node}", lambda: self._ctl("undrain", node))
        return True

    def run(self) -> None:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        try:
            while True:
                sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(self.snapshot()) + "\n")
                sys.stdout.flush()
                ready, _, _ = select.select([sys.stdin], [], [], 0.5)
                if ready and not self.key(sys.stdin.read(1)):
                    return
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
