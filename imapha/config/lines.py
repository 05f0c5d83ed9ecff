"""Where each key of a TOML document is: dotted key path -> 1-based line.

Theory of operation
-------------------
``tomllib`` parses values but forgets positions, and an error without a line
number sends the operator hunting. This module scans the text a second time,
after ``tomllib`` has accepted it, and records the line of every key it sees:

* table headers ``[a.b]`` record ``("a", "b")``; array-of-tables headers
  ``[[a.b]]`` record ``("a", "b", i)`` with ``i`` the element's index, and
  later headers under them (``[[a.b.c]]``, ``[a.b.d]``) nest inside the
  latest element, as TOML 1.0 says;
* ``key = value`` and dotted ``a.b = value`` lines record each prefix;
* values are walked too: arrays record each element (``("k", 0)``), inline
  tables record their keys, and multi-line strings and arrays move the line
  counter without confusing the scan.

Because the input is known to be valid TOML the scanner can be small; it never
raises to its caller (a surprise just ends the scan with what was indexed).
:func:`line_of` falls back from a key to its nearest enclosing table, which is
also where a *missing* key is reported.
"""

from __future__ import annotations

import bisect
import contextlib
import tomllib

Path = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


class _Stop(Exception):
    """The scan met something it does not expect; keep what was indexed."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self.lines: dict[Path, int] = {}
        self.array_tables: dict[Path, int] = {}  # resolved path -> element count
        self.implicit: set[Path] = set()  # tables known only as a prefix so far

    # -- primitives ----------------------------------------------------------------
    def line(self) -> int:
        return bisect.bisect_right(self.starts, self.pos)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    def skip_blanks(self) -> None:
        while self.peek() in (" ", "\t") and not self.at_end():
            self.pos += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_space_and_newlines(self) -> None:
        """Blanks, newlines and comments, as allowed inside arrays."""
        while not self.at_end():
            ch = self.peek()
            if ch in " \t\r\n":
                self.pos += 1
            elif ch == "#":
                self.skip_comment()
            else:
                return

    def expect(self, s: str) -> None:
        if not self.text.startswith(s, self.pos):
            raise _Stop
        self.pos += len(s)

    # -- strings and keys --------------------------------------------------------------
    def skip_string(self) -> str:
        """Skip a string of any of the four kinds; return its source text."""
        start = self.pos
        for quote in ('"""', "'''"):
            if self.text.startswith(quote, self.pos):
                self.pos += 3
                while True:
                    if self.at_end():
                        raise _Stop
                    if quote[0] == '"' and self.peek() == "\\":
                        self.pos += 2
                    elif self.text.startswith(quote, self.pos):
                        self.pos += 3
                        # Up to two quotes may end the content right before the delimiter.
                        for _ in range(2):
                            if self.peek() == quote[0]:
                                self.pos += 1
                        return self.text[start : self.pos]
                    else:
                        self.pos += 1
        quote = self.peek()
        self.pos += 1
        while True:
            ch = self.peek()
            if ch in ("", "\n"):
                raise _Stop
            if quote == '"' and ch == "\\":
                self.pos += 2
                continue
            self.pos += 1
            if ch == quote:
                return self.text[start : self.pos]

    def key_part(self) -> str:
        ch = self.peek()
        if ch in ('"', "'"):
            source = self.skip_string()
            value = tomllib.loads(f"k = {source}")["k"]
            if not isinstance(value, str):
                raise _Stop
            return value
        start = self.pos
        while not self.at_end() and self.peek() in _BARE:
            self.pos += 1
        if self.pos == start:
            raise _Stop
        return self.text[start : self.pos]

    def dotted_key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self.skip_blanks()
            parts.append(self.key_part())
            self.skip_blanks()
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1

    # -- values ------------------------------------------------------------------------
    def value(self, path: Path) -> None:
        self.skip_blanks()
        ch = self.peek()
        if ch == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_space_and_newlines()
                if self.peek() == "]":
                    self.pos += 1
                    return
                self.record((*path, index), self.line())
                self.value((*path, index))
                self.skip_space_and_newlines()
                if self.peek() == ",":
                    self.pos += 1
                    index += 1
        elif ch == "{":
            self.pos += 1
            while True:
                self.skip_blanks()
                if self.peek() == "}":
                    self.pos += 1
                    return
                self.key_value(path)
                self.skip_blanks()
                if self.peek() == ",":
                    self.pos += 1
        elif ch in ('"', "'"):
            self.skip_string()
        else:
            start = self.pos
            while not self.at_end() and self.peek() not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _Stop

    def key_value(self, table: Path) -> None:
        line = self.line()
        keys = self.dotted_key()
        for i in range(1, len(keys) + 1):
            self.record((*table, *keys[:i]), line)
        self.skip_blanks()
        self.expect("=")
        self.value((*table, *keys))

    # -- document ----------------------------------------------------------------------
    def resolve(self, keys: tuple[str, ...]) -> Path:
        """A header's keys as a path, stepping into the latest array-table element."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            count = self.array_tables.get(path)
            if count is not None:
                path = (*path, count - 1)
        return path

    def header(self) -> Path:
        line = self.line()
        if self.text.startswith("[[", self.pos):
            self.pos += 2
            keys = self.dotted_key()
            self.expect("]]")
            parent = self.resolve(keys[:-1])
            array: Path = (*parent, keys[-1])
            count = self.array_tables.get(array, 0)
            self.array_tables[array] = count + 1
            self.record(array, line)
            table: Path = (*array, count)
        else:
            self.pos += 1
            keys = self.dotted_key()
            self.expect("]")
            table = self.resolve(keys)
        for i in range(1, len(table)):
            if table[:i] not in self.lines:
                self.implicit.add(table[:i])
            self.record(table[:i], line)
        if table in self.implicit:  # `[a]` written after `[a.b]`: the header is its place
            self.implicit.discard(table)
            self.lines[table] = line
        self.record(table, line)
        return table

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_space_and_newlines()
            if self.at_end():
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)


def index_lines(text: str) -> dict[Path, int]:
    """Map every key path of a valid TOML document to the line it is written on."""
    scanner = _Scanner(text)
    with contextlib.suppress(_Stop, tomllib.TOMLDecodeError, IndexError):
        scanner.document()
    return scanner.lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, else of its nearest enclosing key or table."""
    for n in range(len(path), 0, -1):
        line = lines.get(path[:n])
        if line is not None:
            return line
    return None


def dotted(path: Path) -> str:
    """``("vips", 1, "vrid")`` -> ``vips[1].vrid``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part and all(ch in _BARE for ch in part) else f'"{part}"'
            out += f".{text}" if out else text
    return out
