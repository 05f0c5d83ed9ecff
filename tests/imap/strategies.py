"""Hypothesis strategies for IMAP values, commands and responses."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import assume
from hypothesis import strategies as st

from imapha.imap import (
    Atom,
    Authenticate,
    Capability,
    CapabilityResponse,
    ClientCommand,
    Command,
    ContinuationRequest,
    Greeting,
    Id,
    IdResponse,
    Literal,
    LocalProtocolError,
    Login,
    Logout,
    Noop,
    PList,
    Quoted,
    Response,
    ResponseCode,
    StartTLS,
    Status,
    Tag,
    TaggedResponse,
    Token,
    UntaggedData,
    UntaggedStatus,
)
from imapha.imap.commands import PARSERS
from imapha.imap.tokens import CANONICAL_ATOM_RE

_TAG_ALPHABET = "".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){ %*"\\+'
)
tags = st.text(_TAG_ALPHABET, min_size=1, max_size=8).map(Tag)
atom_names = st.from_regex(r"[A-Z][A-Z0-9.=-]{0,11}", fullmatch=True)
lenient_atoms = (
    st.from_regex(CANONICAL_ATOM_RE, fullmatch=True)
    .filter(lambda b: len(b) < 40 and b.isascii())
    .map(lambda b: b.decode("ascii"))
)
no_nul = st.binary(max_size=40).filter(lambda b: b"\x00" not in b)
text_no_nul = st.text(max_size=30).filter(lambda s: "\x00" not in s)


def _literal(data: bytes, binary: bool) -> Literal:
    return Literal(data, binary=binary or b"\x00" in data)


tokens: st.SearchStrategy[Token] = st.recursive(
    st.one_of(
        lenient_atoms.map(Atom),
        st.binary(max_size=20)
        .filter(lambda b: not (set(b) & {0, 10, 13}))
        .map(Quoted),
        st.builds(_literal, st.binary(max_size=30), st.booleans()),
    ),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: PList(tuple(xs))),
    max_leaves=12,
)

id_params = st.one_of(
    st.none(),
    st.lists(
        st.tuples(
            st.text(max_size=7).filter(lambda s: "\x00" not in s),
            st.one_of(st.none(), text_no_nul),
        ),
        max_size=5,
    ).map(tuple),
)

commands: st.SearchStrategy[ClientCommand] = st.one_of(
    st.builds(Capability, tags),
    st.builds(Noop, tags),
    st.builds(Logout, tags),
    st.builds(StartTLS, tags),
    st.builds(Login, tags, text_no_nul, no_nul),
    st.builds(Authenticate, tags, atom_names, st.one_of(st.none(), st.binary(max_size=40))),
    st.builds(Id, tags, id_params),
    st.builds(
        Command,
        tags,
        atom_names.filter(lambda n: n not in PARSERS),
        st.lists(tokens, max_size=5).map(tuple),
    ),
)


codes = st.one_of(
    st.none(),
    st.builds(
        ResponseCode,
        atom_names,
        st.one_of(st.none(), st.from_regex(r"[!-Z^-~]([ -Z^-~]{0,15}[!-Z^-~])?", fullmatch=True)),
    ),
)
resp_text = st.text(max_size=30)


@st.composite
def _status_response(
    draw: st.DrawFn,
    factory: Callable[[Status, str, ResponseCode | None], Response],
    statuses: list[Status],
) -> Response:
    status = draw(st.sampled_from(statuses))
    text = draw(resp_text)
    code = draw(codes)
    try:
        return factory(status, text, code)
    except LocalProtocolError:
        assume(False)
        raise


@st.composite
def _tagged(draw: st.DrawFn) -> Response:
    tag = draw(tags)
    return draw(
        _status_response(lambda s, t, c: TaggedResponse(tag, s, t, c), _STATUS3)
    )


@st.composite
def _continuation(draw: st.DrawFn) -> Response:
    try:
        return ContinuationRequest(draw(st.text(max_size=20)))
    except LocalProtocolError:
        assume(False)
        raise


_STATUS3 = [Status.OK, Status.NO, Status.BAD]
capability_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9=+.-]{0,10}", fullmatch=True)

responses: st.SearchStrategy[Response] = st.one_of(
    _tagged(),
    _status_response(UntaggedStatus, [*_STATUS3, Status.BYE]),
    _continuation(),
    st.lists(capability_names, max_size=6).map(lambda c: CapabilityResponse(tuple(c))),
    st.builds(IdResponse, id_params),
    st.builds(
        UntaggedData,
        atom_names.filter(lambda n: n not in {"OK", "NO", "BAD", "BYE", "PREAUTH",
                                              "CAPABILITY", "ID"}),
        st.one_of(st.none(), st.integers(0, 2**32)),
        st.lists(tokens, max_size=4).map(tuple),
    ),
)
greetings: st.SearchStrategy[Response] = _status_response(
    Greeting, [Status.OK, Status.PREAUTH, Status.BYE]
)
