"""A whole lab cluster for the operators' tests, and real IMAP clients against it."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from imapha.lab.cluster import Cluster
from imapha.lab.proc import LabProcess
from imapha.lab.topology import Lab
from tests.prereq import need_root


@contextlib.contextmanager
def running_cluster(users: int = 2) -> Iterator[Cluster]:
    """Both nodes up with their VIPs at home; everything torn down afterwards."""
    need_root()
    # Short: the control sockets live under it and Unix socket paths are limited.
    root = Path(tempfile.mkdtemp(prefix="ops", dir="/tmp"))
    try:
        with Lab(workdir=root / "lab") as lab:
            cluster = Cluster(lab, root / "c", users=users, advert_interval="100ms")
            try:
                cluster.start(60)
                cluster.wait_backends_up(30)
                yield cluster
            finally:
                for node in cluster.nodes:
                    cluster.stop_node(node, grace=5)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# A client in the client namespace: implicit TLS checked against the lab CA.
_CLIENT = r"""
import imaplib, json, ssl, sys, time
spec = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=spec["ca"])
done = 0
for vip in spec["vips"]:
    for user, password in spec["users"]:
        for _ in range(spec["rounds"]):
            m = imaplib.IMAP4_SSL(vip, 993, ssl_context=ctx, timeout=10)
            m.login(user, password)
            m.select("INBOX")
            m.append("INBOX", None, None, b"Subject: ops\r\n\r\nhello\r\n")
            m.fetch("1:*", "(FLAGS)")
            m.logout()
            done += 1
if spec["hold"]:
    vip = spec["vips"][0]
    user, password = spec["users"][0]
    held = []
    for _ in range(spec["hold"]):
        m = imaplib.IMAP4_SSL(vip, 993, ssl_context=ctx, timeout=10)
        m.login(user, password)
        m.select("INBOX")
        held.append(m)
    print(json.dumps({"sessions": done, "held": len(held)}), flush=True)
    time.sleep(spec["hold_seconds"])
else:
    print(json.dumps({"sessions": done, "held": 0}), flush=True)
"""


def _spec(cluster: Cluster, vips: list[str], rounds: int, hold: int,
          hold_seconds: float) -> str:
    return json.dumps({
        "ca": str(cluster.pki.ca_cert), "vips": vips, "rounds": rounds, "hold": hold,
        "hold_seconds": hold_seconds,
        "users": [[u.name, u.password] for u in cluster.mail_users]})


def logins(cluster: Cluster, vips: list[str], rounds: int = 2) -> int:
    """Log every mail user in ``rounds`` times through each VIP; the sessions done."""
    out = cluster.client.run([sys.executable, "-c", _CLIENT,
                              _spec(cluster, vips, rounds, 0, 0.0)], timeout=120)
    done: int = json.loads(out.stdout)["sessions"]
    return done


def hold_sessions(cluster: Cluster, vip: str, count: int, seconds: float) -> LabProcess:
    """A client process keeping ``count`` logged-in sessions open through ``vip``."""
    return cluster.client.spawn([sys.executable, "-c", _CLIENT,
                                 _spec(cluster, [vip], 0, count, seconds)],
                                log=cluster.root / "logs" / "ops-holder.log")
