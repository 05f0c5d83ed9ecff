"""The imapha DHCPv4 server: sans-I/O codec and RFC 2131 logic, lease stores, failover."""
