"""Property: on any document built from the TOML shapes operators write, the line
index puts every key exactly on the line it was written on."""

from __future__ import annotations

import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.config.lines import Path, index_lines

Rendered = tuple[list[str], dict[Path, int]]  # lines, and path -> line offset within them

bare_keys = st.from_regex(r"[a-z][a-z0-9_-]{0,5}", fullmatch=True)
tokens = st.sampled_from(["a", "Z", " ", "#", "]", "[", "}", "{", ",", "=", "'", "x.y"])
basic_tokens = st.one_of(tokens, st.sampled_from(['\\"', "\\\\", "\\n", "\\u00e9"]))
text = st.lists(tokens, max_size=8).map("".join)


@st.composite
def scalar(draw: st.DrawFn) -> list[str]:
    """A value as source lines (more than one for multi-line strings)."""
    kind = draw(st.sampled_from(["int", "bool", "float", "basic", "literal", "ml-basic",
                                 "ml-literal", "date"]))
    if kind == "int":
        return [str(draw(st.integers(-10**6, 10**6)))]
    if kind == "bool":
        return [draw(st.sampled_from(["true", "false"]))]
    if kind == "float":
        return [draw(st.sampled_from(["1.5", "-0.25", "1e3", "inf", "nan"]))]
    if kind == "date":
        return [draw(st.sampled_from(["1979-05-27T07:32:00Z", "1979-05-27 07:32:00",
                                      "1979-05-27"]))]
    if kind == "basic":
        return ['"' + "".join(draw(st.lists(basic_tokens, max_size=6))) + '"']
    if kind == "literal":
        return ["'" + draw(text).replace("'", "") + "'"]
    quote = '"""' if kind == "ml-basic" else "'''"
    body = [draw(text).replace("'", "") for _ in range(draw(st.integers(1, 3)))]
    return [quote + body[0], *body[1:-1], body[-1] + quote] if len(body) > 1 else [
        quote + body[0] + quote]


@st.composite
def value(draw: st.DrawFn, depth: int = 0) -> Rendered:
    kind = draw(st.sampled_from(["scalar", "array", "ml-array", "inline"] if depth < 2
                                else ["scalar"]))
    if kind == "scalar":
        return draw(scalar()), {}
    if kind == "inline":
        keys = draw(st.lists(bare_keys, max_size=3, unique=True))
        choices = st.sampled_from(["1", "true", '"s,}"'])
        parts = [f"{k} = {draw(choices)}" for k in keys]
        return ["{ " + ", ".join(parts) + " }"], {(k,): 0 for k in keys}
    items = [draw(scalar()) for _ in range(draw(st.integers(0, 3)))]
    items = [item for item in items if len(item) == 1]  # keep single-line scalars
    if kind == "array":
        flat: dict[Path, int] = {(n,): 0 for n in range(len(items))}
        return ["[" + ", ".join(i[0] for i in items) + "]"], flat
    lines: list[str] = ["["]
    where: dict[Path, int] = {}
    for n, item in enumerate(items):
        if draw(st.booleans()):
            lines.append("  # a comment with ] and ,")
        where[(n,)] = len(lines)
        lines.append(f"  {item[0]},")
    return [*lines, "]"], where


@st.composite
def key_values(draw: st.DrawFn, prefix: Path) -> Rendered:
    lines: list[str] = []
    where: dict[Path, int] = {}
    for key in draw(st.lists(bare_keys, max_size=4, unique=True)):
        if draw(st.booleans()):
            lines.append("")
        dotted = draw(st.booleans())
        path = (*prefix, key, "sub") if dotted else (*prefix, key)
        source = f"{key}.sub" if dotted else (f'"{key}"' if draw(st.booleans()) else key)
        vlines, vwhere = draw(value())
        start = len(lines)
        lines += [f"{source} = {vlines[0]}", *vlines[1:]]
        where[path] = start
        where.update({(*path, *sub): start + off for sub, off in vwhere.items()})
    return lines, where


@st.composite
def document(draw: st.DrawFn) -> tuple[str, dict[Path, int]]:
    lines, where = draw(key_values(()))
    for n in range(draw(st.integers(0, 4))):
        array = draw(st.booleans())
        for index in range(draw(st.integers(1, 3)) if array else 1):
            base: Path = (f"t{n}", "arr", index) if array else (f"t{n}", "tab")
            header = f"[[t{n}.arr]]" if array else f"[ t{n}.tab ]"
            where.setdefault(base, len(lines))
            lines.append(header + draw(st.sampled_from(["", "  # [x]"])))
            body, body_where = draw(key_values(base))
            where.update({p: len(lines) + off for p, off in body_where.items()})
            lines += body
    return "\n".join(lines) + "\n", {p: line + 1 for p, line in where.items()}


@settings(max_examples=150, deadline=None)
@given(document())
def test_every_key_is_on_its_line(doc: tuple[str, dict[Path, int]]) -> None:
    source, expected = doc
    tomllib.loads(source)  # the generator writes valid TOML
    lines = index_lines(source)
    assert {p: lines.get(p) for p in expected} == expected, source
