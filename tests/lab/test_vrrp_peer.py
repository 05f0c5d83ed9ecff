"""Real VRRP across the lab: keepalived in two hosts elects one master; a
partition splits the brain (adverts are multicast, and the partition catches
them), and heal restores a single master."""

from __future__ import annotations

from pathlib import Path

from imapha.lab import Host, LabProcess
from imapha.lab.fixtures import TwoNodeLab
from tests.lab.helpers import eventually
from tests.prereq import need_binary

VIP = "192.0.2.200"

KEEPALIVED_CONF = """
global_defs {{
    vrrp_version 3
    script_user root
    enable_script_security
}}
vrrp_instance lab {{
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 0.1
    state BACKUP
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


def _keepalived(binary: str, host: Host, priority: int, workdir: Path) -> LabProcess:
    conf = workdir / f"keepalived-{host.name}.conf"
    conf.write_text(KEEPALIVED_CONF.format(priority=priority, vip=VIP))
    return host.spawn(
        [
            binary,
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            str(conf),
            "-p",
            str(workdir / f"ka-{host.name}.pid"),
            "-r",
            str(workdir / f"ka-vrrp-{host.name}.pid"),
        ]
    )


def _holds_vip(host: Host) -> bool:
    return f" {VIP}/24 " in host.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_keepalived_pair_elects_one_master_splits_when_partitioned_and_heals(
    two_node_lab: TwoNodeLab, tmp_path: Path
) -> None:
    binary = need_binary("keepalived")
    lab, a, b = two_node_lab.lab, two_node_lab.a, two_node_lab.b
    ka_a = _keepalived(binary, a, 150, tmp_path)
    ka_b = _keepalived(binary, b, 100, tmp_path)

    def one_master() -> bool:
        return _holds_vip(a) and not _holds_vip(b)

    assert eventually(one_master, timeout=10.0), ka_a.output() + ka_b.output()
    assert not eventually(lambda: not one_master(), timeout=1.0)  # and it stays so

    lab.partition(a, b)
    assert eventually(lambda: _holds_vip(a) and _holds_vip(b), timeout=5.0), ka_b.output()

    lab.heal()
    assert eventually(one_master, timeout=5.0), ka_b.output()
    assert a.kill() == [] and b.kill() == []
