"""A whole cluster on one machine: network namespaces, veth pairs, bridges, processes.

``Lab`` builds the topology (``imapha.lab.topology``), ``LabProcess`` and the
runner functions start and stop commands in it (``imapha.lab.proc``), and
``imapha.lab.netns`` holds the namespace primitives.  See docs/lab.md.
"""

from imapha.lab.netns import CommandFailed, LabError, new_prefix
from imapha.lab.proc import LabProcess
from imapha.lab.topology import (
    ALLOWED_NETWORKS,
    AddressNotAllowed,
    Host,
    Interface,
    Lab,
    Network,
    teardown,
)

__all__ = [
    "ALLOWED_NETWORKS",
    "AddressNotAllowed",
    "CommandFailed",
    "Host",
    "Interface",
    "Lab",
    "LabError",
    "LabProcess",
    "Network",
    "new_prefix",
    "teardown",
]
