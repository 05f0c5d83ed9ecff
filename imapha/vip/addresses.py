"""Address drivers: where the machine's AddAddresses/RemoveAddresses/SendGratuitous go.

Theory of operation
-------------------
One interface, :class:`AddressDriver`, with two implementations:

:class:`NetlinkDriver` puts VIPs on a real interface through pyroute2 and
announces them with :class:`~imapha.vip.garp.Announcer`. It must never remove an
address it did not put there, yet must clean up after a crashed predecessor (a
killed master leaves its VIP configured: REFERENCE.md). So an address is *ours*
when it is one of the configured VIPs of this virtual router, or (IPv4) when it
carries our label ``<ifname>:ih<vrid>`` (kernel labels are at most 15 bytes and
must start with the interface name; with a longer name we go without the label
and rely on the configured set alone). :meth:`NetlinkDriver.flush`, called at
start-up, removes exactly those. ``add`` uses netlink "replace", which is
idempotent; ``remove`` treats "not there" (EADDRNOTAVAIL) as done.
The netlink socket is opened in the constructor, in the calling thread's
network namespace, with ``IPRoute()`` and no ``netns=`` argument (that one
forks and, with the default flags, silently creates a mistyped namespace).

:class:`ListenerDriver` is for the unprivileged demo: no interface changes at
all; it tells a :class:`ListenerControl` (the proxy's control API, wired by the
daemon) to start or stop serving a loopback VIP.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from imapha.vip.garp import Announcer
from imapha.vip.packet import IPAddress

log = logging.getLogger(__name__)

IFNAMSIZ = 16


class AddressDriver(Protocol):
    """How a virtual router's addresses come and go on this host."""

    def add(self, addresses: Sequence[IPAddress]) -> None: ...

    def remove(self, addresses: Sequence[IPAddress]) -> None: ...

    def flush(self) -> list[IPAddress]:
        """Remove our leftovers (start-up); return what was removed."""
        ...

    def announce(self, addresses: Sequence[IPAddress]) -> None:
        """Gratuitous ARP / unsolicited NA (a no-op where there is no link)."""
        ...


def vip_label(ifname: str, vrid: int) -> str | None:
    """The IPv4 label marking our VIPs, or None if it would not fit (IFNAMSIZ)."""
    label = f"{ifname}:ih{vrid}"
    return label if len(label) < IFNAMSIZ else None


class NetlinkDriver:
    """VIPs of one virtual router on one interface, through rtnetlink."""

    def __init__(
        self,
        ifname: str,
        vrid: int,
        prefixes: Mapping[IPAddress, int],
        *,
        announcer: Announcer | None = None,
        repeat: int = 3,
    ) -> None:
        self.ifname = ifname
        self.vrid = vrid
        self.prefixes = dict(prefixes)
        self.label = vip_label(ifname, vrid)
        self.repeat = repeat
        self._ipr: Any = IPRoute()
        try:
            found = self._ipr.link_lookup(ifname=ifname)
            if not found:
                raise OSError(errno.ENODEV, f"no interface {ifname!r}")
            self.ifindex: int = found[0]
            self.announcer = announcer if announcer is not None else Announcer(ifname)
        except BaseException:
            self._ipr.close()
            raise

    def _prefixlen(self, addr: IPAddress) -> int:
        return self.prefixes.get(addr, 32 if addr.version == 4 else 128)

    def add(self, addresses: Sequence[IPAddress]) -> None:
        for addr in addresses:
            kw: dict[str, Any] = {}
            if addr.version == 4 and self.label is not None:
                kw["label"] = self.label
            self._ipr.addr(
                "replace",
                index=self.ifindex,
                address=str(addr),
                prefixlen=self._prefixlen(addr),
                **kw,
            )
            log.info("added %s/%d to %s", addr, self._prefixlen(addr), self.ifname)

    def remove(self, addresses: Sequence[IPAddress]) -> None:
        for addr in addresses:
            self._delete(addr, self._prefixlen(addr))

    def _delete(self, addr: IPAddress, prefixlen: int) -> bool:
        try:
            self._ipr.addr("del", index=self.ifindex, address=str(addr), prefixlen=prefixlen)
        except NetlinkError as exc:
            if exc.code == errno.EADDRNOTAVAIL:
                return False
            raise
        log.info("removed %s/%d from %s", addr, prefixlen, self.ifname)
        return True

    def present(self) -> list[tuple[IPAddress, int, str | None]]:
        """(address, prefix length, label) of every address on the interface."""
        out: list[tuple[IPAddress, int, str | None]] = []
        for msg in self._ipr.get_addr(index=self.ifindex):
            text = msg.get_attr("IFA_ADDRESS")
            if text is None:
                continue
            out.append(
                (ipaddress.ip_address(text), int(msg["prefixlen"]), msg.get_attr("IFA_LABEL"))
            )
        return out

    def ours(self) -> list[tuple[IPAddress, int]]:
        """Addresses on the interface that this driver may remove."""
        return [
            (addr, plen)
            for addr, plen, label in self.present()
            if addr in self.prefixes or (self.label is not None and label == self.label)
        ]

    def flush(self) -> list[IPAddress]:
        removed = [addr for addr, plen in self.ours() if self._delete(addr, plen)]
        if removed:
            log.warning("flushed leftover VIPs from %s: %s", self.ifname, removed)
        return removed

    def announce(self, addresses: Sequence[IPAddress]) -> None:
        self.announcer.announce(addresses, self.repeat)

    def close(self) -> None:
        self._ipr.close()
        self.announcer.close()


class ListenerControl(Protocol):
    """The service side of the demo: serve, or stop serving, one loopback VIP."""

    def bind_vip(self, address: IPAddress) -> None: ...

    def unbind_vip(self, address: IPAddress) -> None: ...


class ListenerDriver:
    """Address driver for the unprivileged demo: VIPs are listeners, not addresses."""

    def __init__(self, control: ListenerControl, addresses: Iterable[IPAddress]) -> None:
        self.control = control
        self.addresses = tuple(addresses)
        self.bound: set[IPAddress] = set()

    def add(self, addresses: Sequence[IPAddress]) -> None:
        for addr in addresses:
            self.control.bind_vip(addr)
            self.bound.add(addr)

    def remove(self, addresses: Sequence[IPAddress]) -> None:
        for addr in addresses:
            self.control.unbind_vip(addr)
            self.bound.discard(addr)

    def flush(self) -> list[IPAddress]:
        """Tell the service to drop every configured VIP, bound by us or not."""
        self.remove(self.addresses)
        return list(self.addresses)

    def announce(self, addresses: Sequence[IPAddress]) -> None:
        """Loopback has no neighbours to tell."""

