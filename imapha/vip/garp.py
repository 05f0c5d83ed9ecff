"""Gratuitous ARP (RFC 5227 §3 "ARP Announcement") and unsolicited NA (RFC 4861 §7.2.6).

Theory of operation
-------------------
When a router becomes MASTER, hosts and switches still map the virtual address
to the old master's MAC. RFC 5798 §6.4.1/§6.4.2 has the new master broadcast a
gratuitous ARP per IPv4 address and send an unsolicited Neighbor Advertisement
per IPv6 address. pyroute2 has no ARP sender, so :func:`arp_announcement`
builds the Ethernet frame itself (an ARP *request* whose sender and target
protocol addresses are both the VIP: the form RFC 5227 calls an announcement,
which every stack updates its cache from) and :class:`Announcer` writes it to
an AF_PACKET socket bound to the interface. Its MAC address is read from the
bound socket's name, so nothing depends on /sys of the right namespace.

For IPv6 the NA (Override flag set, Solicited clear, target link-layer address
option) goes to ff02::1 through a raw ICMPv6 socket with hop limit 255, as
RFC 4861 §7.1.2 requires; the kernel fills in the ICMPv6 checksum and the
source (a link-local address of the interface).

Frames go out ``repeat`` times back to back; spacing later repeats is the
caller's (daemon's) business.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence

from imapha.vip.packet import IPAddress

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
BROADCAST_MAC = b"\xff" * 6
ARP_REQUEST = 1
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ICMPV6_NA = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LLADDR = 2
MIN_FRAME = 60


def arp_announcement(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for `address` at `mac`."""
    if len(mac) != 6:
        raise ValueError("an Ethernet MAC address is 6 bytes")
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, ARP_REQUEST)
    arp += mac + address.packed + bytes(6) + address.packed
    return (eth + arp).ljust(MIN_FRAME, b"\0")


def neighbor_advertisement(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """ICMPv6 NA body (checksum left 0 for the kernel) announcing address at mac."""
    option = struct.pack("!BB", ND_OPT_TARGET_LLADDR, 1) + mac
    return struct.pack("!BBHI", ICMPV6_NA, 0, 0, NA_FLAG_OVERRIDE) + address.packed + option


class Announcer:
    """Send gratuitous ARP / unsolicited NA on one interface; needs CAP_NET_RAW.

    Create it inside the interface's network namespace: both sockets are opened
    here and stay in that namespace.
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self._arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self._icmp6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            self._arp.bind((ifname, ETH_P_ARP))
            self.mac: bytes = self._arp.getsockname()[4]
            self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            self._icmp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        except OSError:
            self.close()
            raise

    def announce(self, addresses: Sequence[IPAddress], repeat: int = 3) -> int:
        """Send `repeat` announcements per address; return how many left."""
        sent = 0
        for _ in range(repeat):
            for addr in addresses:
                if isinstance(addr, ipaddress.IPv4Address):
                    self._arp.send(arp_announcement(self.mac, addr))
                else:
                    self._icmp6.sendto(
                        neighbor_advertisement(self.mac, addr),
                        (str(ALL_NODES), 0, 0, self.ifindex),
                    )
                sent += 1
        return sent

    def close(self) -> None:
        self._arp.close()
        self._icmp6.close()
