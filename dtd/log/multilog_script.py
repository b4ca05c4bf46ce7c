"""multilog's script: the actions, read as Debian's multilog 0.76 reads them.

Each argument is one action, told apart by its first byte alone: ``t`` (only
as the first action), ``+``/``-`` pattern, ``e``, ``=`` file, ``s`` size,
``n`` number, ``!`` processor, ``.`` or ``/`` a directory. Any other
argument is silently ignored, as the reference ignores it. Numbers are read
like djb's scan_ulong: leading digits only (none gives 0), wrapping modulo
2^64, then clamped.
"""

import re

from dtd.log.multilog_dir import (NUM_DEFAULT, NUM_MIN, SIZE_DEFAULT, SIZE_MAX, SIZE_MIN,
                                  LogDir)

MATCH_LIMIT = 1000  # only this much of a line, stamp included, is kept and matched
STATUS_LEN = 1001  # an =file holds the line padded with newlines to this size
ALERT_LIMIT = 200  # e prints at most this much of a line


def scan_ulong(text: bytes) -> int:
    value = 0
    for ch in text:
        if not 48 <= ch <= 57:
            break
        value = (value * 10 + ch - 48) & 0xFFFFFFFFFFFFFFFF
    return value


def compile_pattern(pattern: bytes) -> "re.Pattern[bytes]":
    """A regex that fullmatches exactly the lines djb's match() accepts.

    A star followed by c skips to the first c without consuming it and
    never backtracks: ``[^c]*`` then a lookahead for c is the same thing.
    A star at the end matches everything; a star right before another star
    looks for a literal star, which the second star then treats as a star.
    """
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i:i + 1]
        i += 1
        if ch == b"*":
            if i == len(pattern):
                out.append(b"(?s:.*)")
            else:
                nxt = re.escape(pattern[i:i + 1])
                out.append(b"[^" + nxt + b"]*(?=" + nxt + b")")
        else:
            out.append(re.escape(ch))
    return re.compile(b"".join(out))


def match(pattern: bytes, line: bytes) -> bool:
    """djb's match(), literally; compile_pattern is checked against it."""
    p = b = 0
    while True:
        if p == len(pattern):
            return b == len(line)
        ch = pattern[p]
        p += 1
        if ch == 42:
            if p == len(pattern):
                return True
            k = line.find(pattern[p:p + 1], b)
            if k < 0:
                return False
            b = k
            continue
        if b == len(line) or line[b] != ch:
            return False
        b += 1


class Action:
    """One per-line action: ``+``/``-`` (a pattern), ``e``, ``=`` (a
    status file) or ``d`` (a directory)."""

    __slots__ = ("kind", "arg", "regex", "fd", "log")

    def __init__(self, kind: str, arg: bytes = b"",
                 regex: "re.Pattern[bytes] | None" = None) -> None:
        self.kind = kind
        self.arg = arg
        self.regex = regex
        self.fd = -1
        self.log: LogDir | None = None


class Script:
    # a plain class: dataclasses would import inspect, a few ms per start
    def __init__(self, timestamp: bool) -> None:
        self.timestamp = timestamp
        self.actions: list[Action] = []

    @property
    def per_line(self) -> bool:
        """Whether a line must be looked at before it can be written: only
        scripts of directories alone can be handled a whole read at once."""
        return any(a.kind != "d" for a in self.actions)


def parse(args: list[bytes]) -> tuple[Script, list[tuple[bytes, int, int, bytes | None]]]:
    """The script, and the directories to open, in order, with their
    size, number and processor."""
    script = Script(timestamp=bool(args) and args[0][:1] == b"t")
    dirs: list[tuple[bytes, int, int, bytes | None]] = []
    size, num, processor = SIZE_DEFAULT, NUM_DEFAULT, None
    for arg in args:
        kind = arg[:1]
        if kind in (b"+", b"-"):
            script.actions.append(Action(kind.decode(), arg[1:], compile_pattern(arg[1:])))
        elif kind == b"e":
            script.actions.append(Action("e"))
        elif kind == b"=":
            script.actions.append(Action("=", arg[1:]))
        elif kind == b"s":
            size = min(max(scan_ulong(arg[1:]), SIZE_MIN), SIZE_MAX)
        elif kind == b"n":
            num = max(scan_ulong(arg[1:]), NUM_MIN)
        elif kind == b"!":
            processor = arg[1:]
        elif kind in (b".", b"/"):
            script.actions.append(Action("d", arg))
            dirs.append((arg, size, num, processor))
    return script, dirs
