"""Sans-I/O IMAP wire layer (RFC 3501 / RFC 9051 syntax, RFC 7888 literals).

No sockets, no Twisted, no clock, no threads: octets in, events out, events in,
octets out, in the style of h11. The public surface:

* :class:`ServerConnection` parses client commands (the proxy's front end, the
  embedded backend); :class:`ClientConnection` parses server responses (the
  proxy towards a backend).
* Commands: :mod:`.commands`; responses: :mod:`.responses`; response codes:
  :mod:`.codes`; values: :mod:`.tokens`; SASL PLAIN/LOGIN: :mod:`.sasl`.
* Limits: :mod:`.limits`; errors: :mod:`.errors`.

See ``docs/imap-wire.md``.
"""

from .client import ClientConnection, ContinueCommand
from .codes import ResponseCode
from .commands import (
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    Capability,
    ClientCommand,
    Command,
    ContinuationLine,
    Id,
    Login,
    Logout,
    Noop,
    StartTLS,
    originating_id,
)
from .encode import LiteralMode
from .errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    ContinuationRequired,
    ProtocolViolation,
    Sentinel,
)
from .limits import AUTHENTICATED, BACKEND_RESPONSES, PRE_LOGIN, Limits
from .responses import (
    CapabilityResponse,
    ContinuationRequest,
    Greeting,
    IdResponse,
    Response,
    Status,
    TaggedResponse,
    UntaggedData,
    UntaggedStatus,
)
from .server import ServerConnection
from .tokens import NIL, Atom, Literal, PList, Quoted, SequenceSet, Tag, Token

__all__ = [
    "AUTHENTICATED",
    "BACKEND_RESPONSES",
    "CLOSED",
    "NEED_DATA",
    "NIL",
    "PAUSED",
    "PRE_LOGIN",
    "Atom",
    "Authenticate",
    "AuthenticateCancel",
    "AuthenticateResponse",
    "Capability",
    "CapabilityResponse",
    "ClientCommand",
    "ClientConnection",
    "Command",
    "ContinuationLine",
    "ContinuationRequest",
    "ContinuationRequired",
    "ContinueCommand",
    "Greeting",
    "Id",
    "IdResponse",
    "LimitExceeded",
    "Limits",
    "Literal",
    "LiteralMode",
    "LocalProtocolError",
    "Login",
    "Logout",
    "Noop",
    "PList",
    "ProtocolError",
    "ProtocolViolation",
    "Quoted",
    "RemoteProtocolError",
    "Response",
    "ResponseCode",
    "Sentinel",
    "SequenceSet",
    "ServerConnection",
    "StartTLS",
    "Status",
    "Tag",
    "TaggedResponse",
    "Token",
    "UntaggedData",
    "UntaggedStatus",
    "originating_id",
]
