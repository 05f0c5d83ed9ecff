"""The VIP manager's core: VRRPv3 (RFC 5798 / RFC 9568), wire-compatible with keepalived.

- :mod:`imapha.vip.packet`: advertisement codec and the §7.1 receive checks.
- :mod:`imapha.vip.machine`: the sans-I/O state machine (events in, actions out).
- :mod:`imapha.vip.transport`: raw IPv4/IPv6 protocol 112, UDP for the demo, demux.
- :mod:`imapha.vip.addresses`: netlink and listener address drivers.
- :mod:`imapha.vip.garp`: gratuitous ARP and unsolicited NA.
- :mod:`imapha.vip.speaker`, :mod:`imapha.vip.reactor`: glue and the Twisted loop.

docs/vrrp.md explains the machine, its timings and the readiness-gating choice.
"""
