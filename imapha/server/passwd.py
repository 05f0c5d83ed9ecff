"""Users from a Dovecot passwd-file, reloaded when the file changes.

Theory of operation
-------------------
Each line is ``user:password:uid:gid:gecos:home:shell:extra`` (Dovecot's
passwd-file; fields after the password may be empty or absent, ``#`` starts a
comment). The password is ``{SCHEME}data``; without a scheme it is ``CRYPT``
(Dovecot's default for passwd-file). Schemes checked here:

* ``SHA512-CRYPT``, ``SHA256-CRYPT``, ``CRYPT`` with a ``$6$``/``$5$`` string
  (:mod:`imapha.server.shacrypt`);
* ``PLAIN``/``CLEARTEXT`` (``PLAIN.B64`` too);
* ``SSHA``, ``SSHA256``, ``SSHA512`` (base64 of digest + salt), ``SHA``,
  ``SHA256``, ``SHA512`` (base64 of digest).

Anything else never authenticates and is logged once. :meth:`UserDb.check`
stats the file on every call (one ``stat``) and re-reads it when its inode,
size or mtime changed, so an edited file takes effect at the next login with
no signal. A file that cannot be read keeps the last good table.

Comparisons are constant-time; a wrong user costs a hash too, so timing does
not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from imapha.server.shacrypt import ShaCryptError
from imapha.server.shacrypt import verify as sha_crypt_verify

__all__ = ["User", "UserDb", "check_password", "parse_passwd"]

log = logging.getLogger(__name__)

#: A known SHA512-CRYPT string: checking against it costs what a real check costs.
_DUMMY_HASH = "{SHA512-CRYPT}$6$imaphadummysalt$" + "x" * 86

_DIGESTS = {"SSHA": "sha1", "SSHA256": "sha256", "SSHA512": "sha512",
            "SHA": "sha1", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


@dataclass(frozen=True)
class User:
    name: str
    password: str  # "{SCHEME}data"; never logged
    uid: int | None = None
    gid: int | None = None
    home: str = ""

    def __repr__(self) -> str:
        return f"User(name={self.name!r}, password=<hidden>, home={self.home!r})"


def parse_passwd(text: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0]
        if not name or len(fields) < 2:
            continue
        uid = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
        gid = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None
        home = fields[5] if len(fields) > 5 else ""
        users[name] = User(name, fields[1], uid, gid, home)
    return users


def _split_scheme(stored: str) -> tuple[str, str]:
    if stored.startswith("{") and "}" in stored:
        scheme, _, data = stored[1:].partition("}")
        return scheme.upper(), data
    return "CRYPT", stored


def check_password(stored: str, password: bytes) -> bool:
    """Whether ``password`` matches the stored ``{SCHEME}data``."""
    scheme, data = _split_scheme(stored)
    try:
        if scheme in ("SHA512-CRYPT", "SHA256-CRYPT", "CRYPT"):
            return sha_crypt_verify(password, data)
        if scheme in ("PLAIN", "CLEARTEXT"):
            return hmac.compare_digest(data.encode("utf-8"), password)
        if scheme == "PLAIN.B64":
            return hmac.compare_digest(base64.b64decode(data), password)
        if scheme in _DIGESTS:
            algo = _DIGESTS[scheme]
            raw = base64.b64decode(data)
            size = hashlib.new(algo).digest_size
            digest, salt = raw[:size], raw[size:]
            if not scheme.startswith("S"):
                salt = b""
            return hmac.compare_digest(hashlib.new(algo, password + salt).digest(), digest)
    except (ShaCryptError, binascii.Error, ValueError):
        return False
    return False


class UserDb:
    """The passwd-file, re-read when it changes (see module doc). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._users: dict[str, User] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.reloads = 0

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if self._stamp is not None or not self._warned:
                log.error("passwd-file %s: %s (keeping %d users)", self.path,
                          exc.strerror, len(self._users))
                self._warned.add("")
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.error("passwd-file %s: %s", self.path, exc.strerror)
            return
        self._users = parse_passwd(text)
        self._stamp = stamp
        self.reloads += 1
        log.info("passwd-file %s: %d users", self.path, len(self._users))

    def get(self, name: str) -> User | None:
        with self._lock:
            self._refresh()
            return self._users.get(name)

    def exists(self, name: str) -> bool:
        return self.get(name) is not None

    def check(self, name: str, password: bytes) -> User | None:
        """The user if ``password`` is right, else None."""
        user = self.get(name)
        stored = user.password if user is not None else _DUMMY_HASH
        scheme, _ = _split_scheme(stored)
        ok = check_password(stored, password)
        if user is not None and not ok and scheme not in (
                "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT", "PLAIN", "CLEARTEXT", "PLAIN.B64",
                *_DIGESTS) and scheme not in self._warned:
            self._warned.add(scheme)
            log.warning("passwd-file %s: password scheme %s is not supported", self.path, scheme)
        return user if ok and user is not None else None
