"""CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, CHECK (RFC 3501 §6.1, 2971, 5161, 2342)."""

from __future__ import annotations

import logging

from imapha.imap import Command, Id
from imapha.imap.commands import ClientCommand
from imapha.imap.responses import (
    CapabilityResponse,
    IdResponse,
    Status,
    UntaggedData,
    UntaggedStatus,
)
from imapha.imap.tokens import NIL, PList, Quoted
from imapha.server.args import Args
from imapha.server.session import Ok, Result, Session
from imapha.server.state import Event

log = logging.getLogger(__name__)

SERVER_ID: tuple[tuple[str, str | None], ...] = (("name", "imapha"),)


def capability(s: Session, cmd: ClientCommand) -> Result:
    s.send(CapabilityResponse(s.capabilities()))
    return Ok("Capability completed")


def noop(s: Session, cmd: ClientCommand) -> Result:
    return Ok("NOOP completed")


def logout(s: Session, cmd: ClientCommand) -> Result:
    s.send(UntaggedStatus(Status.BYE, "Logging out"))
    if s.selected is not None:
        s.set_selected(None)
    s.move(Event.LOGOUT)
    return Ok("Logout completed")


def id_(s: Session, cmd: ClientCommand) -> Result:
    """RFC 2971; from a trusted proxy, ``x-originating-ip`` is the client's address."""
    assert isinstance(cmd, Id)
    params = dict(cmd.params or ())
    s.client_id = params
    origin = params.get("x-originating-ip")
    if origin and s.trusted_peer() and s.state.name == "NOT_AUTHENTICATED":
        s.client_ip = origin
        log.info("session %s: client %s via proxy %s", s.session_id, origin, s.peer)
    s.send(IdResponse(SERVER_ID))
    return Ok("ID completed")


def enable(s: Session, cmd: ClientCommand) -> Result:
    """RFC 5161: no capability here can be enabled; the answer lists none."""
    assert isinstance(cmd, Command)
    Args(cmd.args).atom("capability")
    s.send(UntaggedData("ENABLED"))
    return Ok("Enabled")


def namespace(s: Session, cmd: ClientCommand) -> Result:
    """RFC 2342: one personal namespace, "" with "." as the separator."""
    assert isinstance(cmd, Command)
    Args(cmd.args).end()
    personal = PList((PList((Quoted(b""), Quoted(b"."))),))
    s.send(UntaggedData("NAMESPACE", None, (personal, NIL, NIL)))
    return Ok("Namespace completed")


def check(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Command)
    Args(cmd.args).end()
    return Ok("Check completed")


HANDLERS = {
    "CAPABILITY": capability, "NOOP": noop, "LOGOUT": logout, "ID": id_,
    "ENABLE": enable, "NAMESPACE": namespace, "CHECK": check,
}
