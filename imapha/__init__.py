"""imapha: high-availability IMAP proxy pair, Maildir backend, VIP manager and DHCP failover."""

__version__ = "0.1.0"
