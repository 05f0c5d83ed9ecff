"""STARTTLS, LOGIN and AUTHENTICATE PLAIN with SASL-IR (RFC 3501 §6.2, RFC 4616, RFC 4959).

A user is checked against the passwd-file (:mod:`imapha.server.passwd`); the
Maildir is ``{maildir_root}/{user}/Maildir`` and is created on first login,
as ``imapha deliver`` does for a listed user. Failures say
``[AUTHENTICATIONFAILED]`` and nothing about whether the user exists, and are
answered late: the failed-login penalty of the proxy (2 s doubling per failure
from the address, at most 15 s; :meth:`Session.penalize`), during which the
connection's later commands wait unread.
"""

from __future__ import annotations

import logging

from imapha.imap import Authenticate, ContinuationRequest, Login
from imapha.imap.codes import AUTHENTICATIONFAILED, ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.imap.errors import RemoteProtocolError
from imapha.imap.sasl import parse_plain
from imapha.maildir.folders import Folders, ensure_maildir
from imapha.maildir.fsops import Perms
from imapha.server.errors import bad, no
from imapha.server.session import PENDING, Ok, Result, Session, StartTLSAction

log = logging.getLogger(__name__)


def starttls(s: Session, cmd: ClientCommand) -> Result:
    if not s.ctx.tls_available or s.tls:
        raise bad("TLS is not available" if not s.tls else "TLS is already active")
    s.finish(cmd.tag, Ok("Begin TLS negotiation now"))
    s.tls = True
    s._action(StartTLSAction())
    return PENDING


def _valid_user(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/:\0\n")


def _login(s: Session, user: str, password: bytes, authzid: str = "") -> Ok:
    if authzid and authzid != user:
        raise no("Proxy authorization is not supported", "AUTHORIZATIONFAILED")
    if not _valid_user(user) or s.ctx.users.check(user, password) is None:
        log.info("session %s: login failed for %r from %s", s.session_id, user, s.client_ip)
        s.penalize()
        raise no("Authentication failed", AUTHENTICATIONFAILED)
    maildir = s.ctx.maildir_of(user)
    fs = s.ctx.fs
    if not maildir.is_dir():
        home = maildir.parent
        if not home.is_dir():
            fs.mkdir(home, Perms.from_dir(s.ctx.maildir_root))
        ensure_maildir(fs, maildir, Perms.from_dir(home), folder=False)
    s.login_succeeded()
    s.logged_in(user, Folders.open(maildir, fs))
    log.info("session %s: login user=%s from %s", s.session_id, user, s.client_ip)
    return Ok("Logged in", ResponseCode.capability(s.capabilities()))


def login(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Login)
    return _login(s, cmd.username, cmd.password)


def authenticate(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Authenticate)
    if cmd.mechanism not in s.ctx.mechanisms:
        raise no("Unsupported authentication mechanism", "CANNOT")
    if cmd.initial_response is None:
        s.expect_auth(cmd.tag)
        s.send(ContinuationRequest(""))
        return PENDING
    return plain_response(s, cmd.initial_response)


def plain_response(s: Session, data: bytes) -> Ok:
    try:
        creds = parse_plain(data)
    except RemoteProtocolError as exc:
        raise bad(exc.text) from None
    return _login(s, creds.authcid, creds.password, creds.authzid)


HANDLERS = {"STARTTLS": starttls, "LOGIN": login, "AUTHENTICATE": authenticate}
