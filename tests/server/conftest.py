"""Fixtures: every conformance test runs against ``imapha backend`` and Dovecot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from imapha.lab.dovecot import DovecotServer, traversable_dir
from tests.prereq import need_binary
from tests.server.harness import ImaphaBackend, Target

#: Users each server knows; every test takes fresh ones (see Target.take_user).
USERS = {f"user{i}": f"pw-{i}" for i in range(60)}


@pytest.fixture(scope="module", params=["imapha", "dovecot"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    need_binary("dovecot")
    need_binary("doveadm")
    root = traversable_dir("imapha-server-test-")
    try:
        if request.param == "dovecot":
            with DovecotServer(root / "dovecot", USERS, root / "mail") as dv:
                yield Target("dovecot", dv.listen, dv.imap_port, dv.maildir_root, dict(USERS),
                             dv, sorted(USERS))
        else:
            with ImaphaBackend(root / "imapha", USERS, root / "mail") as be:
                yield Target("imapha", be.host, be.imap_port, be.maildir_root, dict(USERS), be,
                             sorted(USERS))
    finally:
        shutil.rmtree(root, ignore_errors=True)
