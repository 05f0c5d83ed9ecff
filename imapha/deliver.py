"""``imapha deliver USER [--folder F] < message``: local delivery for an MTA.

Theory of operation
-------------------
The MTA (Postfix ``mailbox_command``/``pipe``, Exim ``pipe`` transport) runs us
once per recipient with the message on stdin and reads only our exit status,
so every outcome maps to a sysexits code (``sysexits.h``):

* ``0``   delivered: the whole message is in ``new/`` (or ``cur/``) and fsynced;
* ``67``  EX_NOUSER: not in the passwd-file, or (without one) no such Maildir;
* ``65``  EX_DATAERR: empty input or larger than ``--max-size`` (a bounce);
* ``64``  EX_USAGE: an invalid folder name;
* ``75``  EX_TEMPFAIL: an I/O error or a lock timeout: the MTA keeps the
  message and retries later. Nothing partial is ever left in ``new/``
  (``imapha.maildir.deliver`` writes to ``tmp/`` first);
* ``78``  EX_CONFIG: the config cannot be read.

The Maildir is ``{maildir_root}/{user}/Maildir``, the root from ``--maildir-root``
or the config's ``[backend] maildir_root``. A folder that does not exist gets the
message in INBOX instead (Dovecot LDA's behaviour), unless ``--create-folder``.
Delivery takes no lock; ``--assign-uid`` also gives the message its UID at once
(under ``dovecot-uidlist.lock``; a lock timeout is a temporary failure).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import BinaryIO

from imapha.maildir.deliver import deliver
from imapha.maildir.folders import FolderError, Folders, ensure_maildir
from imapha.maildir.fsops import FileSystem, LockTimeout, Perms
from imapha.maildir.mailbox import Mailbox
from imapha.maildir.names import parse_name

__all__ = ["EX_CONFIG", "EX_DATAERR", "EX_NOUSER", "EX_TEMPFAIL", "EX_USAGE", "configure", "run"]

log = logging.getLogger(__name__)

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75
EX_CONFIG = 78
#: Messages above this many bytes are refused (EX_DATAERR); ``--max-size`` changes it.
MAX_MESSAGE_SIZE = 100 * 1024 * 1024


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", help="recipient: the Maildir is {maildir_root}/USER/Maildir")
    parser.add_argument("--folder", default="INBOX",
                        help="folder to deliver into, '.' between levels (default: INBOX)")
    parser.add_argument("--create-folder", action="store_true",
                        help="create --folder if missing (default: deliver to INBOX instead)")
    parser.add_argument("--maildir-root", type=Path, default=None,
                        help="override the config's [backend] maildir_root")
    parser.add_argument("--passwd-file", type=Path, default=None,
                        help="users allowed (Dovecot passwd-file); default: the config's, "
                             "or none with --maildir-root (then the Maildir must exist)")
    parser.add_argument("--assign-uid", action="store_true",
                        help="give the message its UID now (takes the uidlist lock)")
    parser.add_argument("--lock-timeout", type=float, default=30.0,
                        help="seconds to wait for the uidlist lock (default: %(default)s)")
    parser.add_argument("--max-size", type=int, default=MAX_MESSAGE_SIZE,
                        help="largest message accepted, in bytes (default: %(default)s)")


def _valid_user(user: str) -> bool:
    return bool(user) and not user.startswith(".") and not any(c in user for c in "/:\0\n")


def _listed(passwd_file: Path, user: str) -> bool:
    with passwd_file.open("rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", "replace")
            if line.startswith("#"):
                continue
            if line.split(":", 1)[0].strip() == user:
                return True
    return False


def _settings(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(maildir_root, passwd_file) from the arguments and, when needed, the config."""
    root: Path | None = args.maildir_root
    passwd: Path | None = args.passwd_file
    if root is None:
        from imapha.config import load_config

        backend = load_config(args.config).node(args.node).backend
        root = backend.maildir_root
        if passwd is None:
            passwd = backend.passwd_file
    return root, passwd


def _read_input(stream: BinaryIO, limit: int) -> bytes | None:
    data = stream.read(limit + 1)
    return None if len(data) > limit else data


def deliver_message(args: argparse.Namespace, data: bytes) -> int:
    """The delivery itself, given the message bytes; returns an exit code."""
    user: str = args.user
    if not _valid_user(user):
        log.error("deliver: invalid user name %r", user)
        return EX_NOUSER
    try:
        root, passwd = _settings(args)
    except Exception as exc:  # config errors of every kind end the same way
        log.error("deliver: cannot read the config: %s", exc)
        return EX_CONFIG
    if not data:
        log.error("deliver: empty message for %s", user)
        return EX_DATAERR
    home = root / user
    maildir = home / "Maildir"
    fs = FileSystem()
    try:
        if passwd is not None:
            if not _listed(passwd, user):
                log.error("deliver: no such user %r in %s", user, passwd)
                return EX_NOUSER
            if not maildir.is_dir():
                fs_perms = Perms.from_dir(root)
                if not home.is_dir():
                    fs.mkdir(home, fs_perms)
                ensure_maildir(fs, maildir, Perms.from_dir(home), folder=False)
        elif not maildir.is_dir():
            log.error("deliver: no Maildir for user %r at %s", user, maildir)
            return EX_NOUSER
        folders = Folders.open(maildir, fs)
        target = folders.path(args.folder)
        if args.folder.upper() != "INBOX" and not folders.exists(args.folder):
            if args.create_folder:
                target = folders.create(args.folder)
            else:
                log.warning("deliver: folder %r of %s does not exist, using INBOX",
                            args.folder, user)
                target = maildir
        if args.assign_uid:
            filename = _deliver_with_uid(target, data, fs, args.lock_timeout)
        else:
            filename = deliver(target, data, fs=fs)
        log.info("deliver: %s bytes to %s (%s) as %s", len(data), user, args.folder, filename)
        return EX_OK
    except FolderError as exc:
        log.error("deliver: %s", exc)
        return EX_USAGE
    except LockTimeout as exc:
        log.error("deliver: lock timeout, the MTA should retry: %s", exc)
        return EX_TEMPFAIL
    except OSError as exc:
        log.error("deliver: I/O error, the MTA should retry: %s", exc)
        return EX_TEMPFAIL


def _deliver_with_uid(target: Path, data: bytes, fs: FileSystem, timeout: float) -> str:
    """Lock first (a timeout fails before anything is written, so the MTA's retry
    cannot duplicate), deliver, then give the message its UID under the same lock."""
    box = Mailbox(target, fs=fs, lock_timeout=timeout)
    with box.lock() as lock:
        filename = deliver(target, data, fs=fs)
        try:
            box.assign_uids([parse_name(filename).base], held=lock)
        except OSError as exc:
            # Delivered all the same: the next sync gives the UID. Not a retry case.
            log.warning("deliver: delivered, but no UID assigned yet: %s", exc)
    return filename


def run(args: argparse.Namespace) -> int:
    try:
        data = _read_input(sys.stdin.buffer, args.max_size)
    except OSError as exc:
        log.error("deliver: cannot read the message: %s", exc)
        return EX_TEMPFAIL
    if data is None:
        log.error("deliver: message larger than %d bytes refused", args.max_size)
        return EX_DATAERR
    return deliver_message(args, data)
