"""Just enough PromQL reading to check a dashboard against the metrics the code exports.

Theory of operation
-------------------
A dashboard query names metrics, labels and functions. :func:`scan` splits an
expression into tokens (strings, durations in brackets, numbers, identifiers,
punctuation) and then walks them once:

- an identifier followed by ``(`` is a function or an aggregation
  (``rate(``, ``sum(``, ``histogram_quantile(``), and so is an aggregation
  followed by its grouping (``sum by (le) (...)``);
- after ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``
  a parenthesised list holds label names used for grouping;
- inside ``{...}`` each ``label op "value"`` is a matcher of the selector
  just before it;
- any other identifier that is not a keyword is a metric name.

Grafana's variables (``$node``, ``${DS}``, ``$__rate_interval``) only occur in
strings and range brackets here, which the tokenizer skips as whole tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?<![A-Za-z_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},])
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE)

KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                      "and", "or", "unless", "offset", "inf", "nan", "atan2"})
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                          "count_values", "bottomk", "topk", "quantile"})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


class PromQLSyntaxError(ValueError):
    """The expression has something this reader does not understand."""


@dataclass
class Query:
    """What one expression uses."""

    metrics: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    #: (metric, label) for each matcher inside a selector's braces.
    matchers: list[tuple[str, str]] = field(default_factory=list)
    #: labels named in by(...)/without(...)/on(...)/group_left(...).
    grouping: list[str] = field(default_factory=list)


def tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(expr):
        kind = m.lastgroup or "other"
        if kind == "space":
            continue
        if kind == "other":
            raise PromQLSyntaxError(f"unexpected {m.group()!r} at {m.start()} in {expr!r}")
        out.append((kind, m.group()))
    return out


def scan(expr: str) -> Query:
    toks = tokens(expr)
    query = Query()
    i = 0
    depth = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text in GROUPING:
            i += 1
            if i < len(toks) and toks[i][1] == "(":
                i += 1
                while i < len(toks) and toks[i][1] != ")":
                    if toks[i][0] == "ident":
                        query.grouping.append(toks[i][1])
                    elif toks[i][1] != ",":
                        raise PromQLSyntaxError(f"{toks[i][1]!r} in a label list: {expr!r}")
                    i += 1
                i += 1
            continue
        if kind == "ident" and (nxt == "(" or (text in AGGREGATIONS and nxt in GROUPING)):
            query.functions.append(text)
        elif kind == "ident" and text.lower() not in KEYWORDS:
            query.metrics.append(text)
            if nxt == "{":
                i = _matchers(toks, i + 2, text, query, expr)
                continue
        elif text == "{":  # a selector with no name: {__name__="..."}
            i = _matchers(toks, i + 1, "", query, expr)
            continue
        elif text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth < 0:
                raise PromQLSyntaxError(f"unbalanced ')' in {expr!r}")
        i += 1
    if depth:
        raise PromQLSyntaxError(f"unbalanced '(' in {expr!r}")
    return query


def _matchers(toks: list[tuple[str, str]], i: int, metric: str, query: Query,
              expr: str) -> int:
    """Read ``label op "value", ...}`` from ``toks[i]``; return the index after ``}``."""
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][1] == ",":
            i += 1
            continue
        if (i + 2 >= len(toks) or toks[i][0] != "ident"
                or toks[i + 1][1] not in {"=", "!=", "=~", "!~"} or toks[i + 2][0] != "string"):
            raise PromQLSyntaxError(f"bad label matcher near {toks[i][1]!r} in {expr!r}")
        query.matchers.append((metric, toks[i][1]))
        i += 3
    if i >= len(toks):
        raise PromQLSyntaxError(f"unclosed '{{' in {expr!r}")
    return i + 1


def label_values_metric(query: str) -> str | None:
    """The metric of a Grafana ``label_values(metric, label)`` variable query."""
    m = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*(\w+)\s*\)\s*", query)
    return m.group(1) if m else None
