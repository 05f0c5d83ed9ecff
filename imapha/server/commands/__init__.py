"""The command handlers, one module per command or small group (go-imap style).

Each handler is ``(session, command) -> Ok | PENDING`` or raises
:class:`~imapha.server.errors.CommandError`; :data:`HANDLERS` maps the
command name (``UID FETCH`` for UID forms) to it. What a state allows is in
:mod:`imapha.server.state`; CAPABILITY follows from this table.
"""

from __future__ import annotations

from collections.abc import Callable

from imapha.imap.commands import ClientCommand
from imapha.server.commands import append as append
from imapha.server.commands import auth as auth
from imapha.server.commands import basic as basic
from imapha.server.commands import copymove as copymove
from imapha.server.commands import expunge as expunge
from imapha.server.commands import fetch as fetch
from imapha.server.commands import idle as idle
from imapha.server.commands import listing as listing
from imapha.server.commands import mailboxes as mailboxes
from imapha.server.commands import search_cmd as search_cmd
from imapha.server.commands import select as select
from imapha.server.commands import status as status
from imapha.server.commands import store as store
from imapha.server.session import Result, Session

Handler = Callable[[Session, ClientCommand], Result]

HANDLERS: dict[str, Handler] = {}
for _module in (append, auth, basic, copymove, expunge, fetch, idle, listing, mailboxes,
                search_cmd, select, status, store):
    HANDLERS.update(_module.HANDLERS)

__all__ = ["HANDLERS", "Handler"]
