"""Response trees for FETCH: wire tokens plus back-to-back lists.

Theory of operation
-------------------
RFC 3501 §9 writes some lists with no space between their items:
``body-type-mpart = 1*body SP media-subtype`` and ``env-from = "(" 1*address ")"``.
The wire layer's :class:`~imapha.imap.tokens.PList` always separates items with
SP, so FETCH data is built as :data:`Node` trees: any token, a
:class:`NodeList` (a parenthesized list whose items may be nodes) or an
:class:`Adjacent` run. :func:`write_node` serialises a tree for a server
response, literals inline, quoting exactly as :mod:`imapha.imap.encode` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapha.imap.encode import quote
from imapha.imap.tokens import Atom, PList, Quoted, Token

__all__ = ["Adjacent", "Node", "NodeList", "node_bytes", "write_node"]


@dataclass(frozen=True, slots=True)
class Adjacent:
    """Items written with no separator (multipart children, RFC 3501 §9 ``1*body``)."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NodeList:
    """A parenthesized list that may hold :class:`Adjacent` items."""

    items: tuple[Node, ...]


Node = Token | Adjacent | NodeList


def write_node(node: Node, out: bytearray) -> None:
    """Serialise for a server response (literals inline) onto ``out``.

    Checks run in the order of frequency in ENVELOPE/BODYSTRUCTURE data (it is hot).
    """
    if isinstance(node, Quoted):
        value = node.value
        out += quote(value) if b"\\" in value or b'"' in value else b'"' + value + b'"'
    elif isinstance(node, PList | NodeList):
        out += b"("
        first = True
        for item in node.items:
            if not first:
                out += b" "
            first = False
            write_node(item, out)
        out += b")"
    elif isinstance(node, Atom):
        out += node.value.encode("ascii")
    elif isinstance(node, Adjacent):
        for item in node.items:
            write_node(item, out)
    else:
        out += b"%s{%d}\r\n" % (b"~" if node.binary else b"", len(node.value))
        out += node.value


def node_bytes(node: Node) -> bytes:
    out = bytearray()
    write_node(node, out)
    return bytes(out)
