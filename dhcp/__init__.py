"""The imapha DHCPv4 server: sans-I/O codec and RFC 2131 logic, lease stores, failover.

Today: :mod:`dhcp.packet` / :mod:`dhcp.options` (the wire codec),
:mod:`dhcp.logic` (the RFC 2131 server as packets in, ordered actions out),
:mod:`dhcp.store` with :mod:`dhcp.sqlite_store` and :mod:`dhcp.memory_store`
(lease stores), :mod:`dhcp.registrations` (static hosts) and
:mod:`dhcp.network` (subnets and pools). See docs/dhcp.md.
"""
