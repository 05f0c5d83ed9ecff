"""restart_changes: which edits a SIGHUP cannot apply."""

from __future__ import annotations

from pathlib import Path

from imapha.config import loads_config, restart_changes
from tests.config.helpers import BASE


def test_live_changes_need_no_restart(tmp_path: Path) -> None:
    old = loads_config(BASE + '[proxy]\nmax_connections = 10\n', path=tmp_path / "c.toml")
    new = loads_config(
        BASE.replace('home = "a"', 'home = "a"\npriority = 200')
        + '[proxy]\nmax_connections = 20\ntls_cert = "/new.pem"\n'
          '[vrrp]\nhooks = { master = "/bin/true" }\n'
          '[[backends]]\nname = "be2"\naddress = "192.0.2.22:143"\n',
        path=tmp_path / "c.toml")
    assert restart_changes(old, new, "a", "proxy") == []
    assert restart_changes(old, new, "a", "vipd") == []

def test_restart_changes_are_named(tmp_path: Path) -> None:
    old = loads_config(BASE, path=tmp_path / "c.toml")
    new = loads_config(
        BASE.replace("vrid = 51", "vrid = 61")
        + '[proxy]\nimap = ["192.0.2.101:143"]\nmetrics = "127.0.0.1:9143"\n'
          '[vrrp]\nadvert_interval = "500ms"\n',
        path=tmp_path / "c.toml")
    assert restart_changes(old, new, "a", "proxy") == ["proxy.imap", "proxy.metrics"]
    assert restart_changes(old, new, "b", "vipd") == ["vrrp.advert_interval", "vips"]
