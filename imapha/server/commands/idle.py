"""IDLE (RFC 2177): ``+ idling``, then changes pushed as they happen until ``DONE``.

The handler sends the continuation and returns PENDING; the shell's folder
watch calls :meth:`Session.wake`, which announces changes (EXPUNGE included);
the ``DONE`` line ends it with the tagged OK (:meth:`Session._idle_line`).
"""

from __future__ import annotations

from imapha.imap import Command, ContinuationRequest
from imapha.imap.commands import ClientCommand
from imapha.server.args import Args
from imapha.server.session import PENDING, Result, Session


def idle(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Command)
    Args(cmd.args).end()
    if s.selected is not None:
        for resp in s.selected.refresh(allow_expunge=True):
            s.send(resp)
    s.idling = cmd.tag
    s.send(ContinuationRequest("idling"))
    return PENDING


HANDLERS = {"IDLE": idle}
