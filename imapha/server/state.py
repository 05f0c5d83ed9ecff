"""The IMAP session states and which commands each allows (RFC 3501 §3, §6).

Theory of operation
-------------------
Everything that decides *whether* a command may run lives here, as data:

* :data:`ALLOWED` maps each command name (``UID FETCH`` for the UID forms) to
  the states it is valid in; a command valid in none of the current ones is
  ``BAD`` (RFC 3501 §6: "in the wrong state"), an unknown one ``BAD`` too.
* :data:`TRANSITIONS` maps (state, event) to the next state; a pair missing
  from it is a bug of ours (``KeyError``), never a client's doing.
* :data:`NO_EXPUNGE` names the commands during which no untagged EXPUNGE may
  be sent (RFC 3501 §7.4.1: sequence numbers must stay as the client knows
  them while it uses them): FETCH, STORE, SEARCH (UID forms are exempt, but
  we keep them quiet too, as Dovecot does).

CAPABILITY is not a list kept by hand: :func:`capabilities` derives it from
the command table, the auth mechanisms and whether STARTTLS can run now.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["ALLOWED", "NO_EXPUNGE", "TRANSITIONS", "Event", "State", "capabilities"]


class State(enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class Event(enum.Enum):
    LOGIN = "login"
    SELECT = "select"
    SELECT_FAILED = "select-failed"
    CLOSE = "close"
    LOGOUT = "logout"


_N, _A, _S = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
_ANY: Final = frozenset({_N, _A, _S})
_NOT_AUTH: Final = frozenset({_N})
_AUTHED: Final = frozenset({_A, _S})
_SEL: Final = frozenset({_S})

ALLOWED: Final[dict[str, frozenset[State]]] = {
    # §6.1 any state
    "CAPABILITY": _ANY, "NOOP": _ANY, "LOGOUT": _ANY, "ID": _ANY,
    # §6.2 not authenticated
    "STARTTLS": _NOT_AUTH, "LOGIN": _NOT_AUTH, "AUTHENTICATE": _NOT_AUTH,
    # §6.3 authenticated (and selected)
    "ENABLE": _AUTHED, "NAMESPACE": _AUTHED, "SELECT": _AUTHED, "EXAMINE": _AUTHED,
    "CREATE": _AUTHED, "DELETE": _AUTHED, "RENAME": _AUTHED, "SUBSCRIBE": _AUTHED,
    "UNSUBSCRIBE": _AUTHED, "LIST": _AUTHED, "LSUB": _AUTHED, "STATUS": _AUTHED,
    "APPEND": _AUTHED, "IDLE": _AUTHED,
    # §6.4 selected
    "CHECK": _SEL, "CLOSE": _SEL, "UNSELECT": _SEL, "EXPUNGE": _SEL, "SEARCH": _SEL,
    "FETCH": _SEL, "STORE": _SEL, "COPY": _SEL, "MOVE": _SEL,
    "UID SEARCH": _SEL, "UID FETCH": _SEL, "UID STORE": _SEL, "UID COPY": _SEL,
    "UID MOVE": _SEL, "UID EXPUNGE": _SEL,
}

#: Commands during which untagged EXPUNGE must wait (RFC 3501 §7.4.1).
NO_EXPUNGE: Final = frozenset({"FETCH", "STORE", "SEARCH", "UID FETCH", "UID STORE",
                               "UID SEARCH"})

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (_N, Event.LOGIN): _A,
    (_A, Event.SELECT): _S,
    (_S, Event.SELECT): _S,
    (_A, Event.SELECT_FAILED): _A,
    (_S, Event.SELECT_FAILED): _A,  # §6.3.1: a failed SELECT leaves no mailbox selected
    (_S, Event.CLOSE): _A,
    (_N, Event.LOGOUT): State.LOGOUT,
    (_A, Event.LOGOUT): State.LOGOUT,
    (_S, Event.LOGOUT): State.LOGOUT,
}

#: Extensions and the commands that carry them: advertised only when implemented.
_EXTENSIONS: Final = (
    ("LITERAL+", None), ("SASL-IR", "AUTHENTICATE"), ("ID", "ID"), ("ENABLE", "ENABLE"),
    ("IDLE", "IDLE"), ("NAMESPACE", "NAMESPACE"), ("UIDPLUS", "UID EXPUNGE"),
    ("MOVE", "MOVE"), ("UNSELECT", "UNSELECT"), ("CHILDREN", "LIST"),
    ("SPECIAL-USE", "LIST"),
)


def capabilities(state: State, *, starttls: bool, mechanisms: tuple[str, ...],
                 implemented: frozenset[str]) -> tuple[str, ...]:
    caps = ["IMAP4rev1"]
    for name, command in _EXTENSIONS:
        if command is None or command in implemented:
            caps.append(name)
    if state is State.NOT_AUTHENTICATED:
        if starttls and "STARTTLS" in implemented:
            caps.append("STARTTLS")
        caps.extend(f"AUTH={m}" for m in mechanisms)
    return tuple(caps)
