"""Selection by ``+``/``-`` patterns over a whole buffer of lines at once.

For scripts whose only per-line actions are patterns, each pattern is run
once over the buffer as a multi-line regex (its matches are the lines it
matches), and each directory's selection is kept as a set of line starts:
either the lines it takes or, while that is shorter, the lines it leaves
out. A line then costs Python work only when a pattern matches it, not
for every action of the script.

Buffers hold whole lines after a first newline, none longer than the 1000 bytes that patterns
look at, come here; the caller handles the rest line by line.
"""

import re

from dtd.log.multilog_script import ALERT_LIMIT, Action

TAPS = ("d", "e", "=")  # the actions that use the selection
# a selected line longer than ALERT_LIMIT, after the newline before it
_LONG_ALERT = re.compile(b"\n([^\n]{%d})[^\n]+" % ALERT_LIMIT)


def line_regex(pattern: bytes) -> "re.Pattern[bytes] | None":
    """The regex whose matches in a buffer of lines that starts with a
    newline start at the newline before each line that djb's match()
    accepts; None for a pattern no line can match. (A literal newline
    first, rather than re.M's ^, lets the regex engine skip ahead to
    candidates instead of trying every byte.)"""
    if b"\n" in pattern:
        return None  # lines hold no newline
    out = [b"\n"]
    i = 0
    while i < len(pattern):
        ch = pattern[i:i + 1]
        i += 1
        if ch == b"*":
            # possessive: what a star skipped is never given back, as in
            # match(), and a line that fails is not rescanned
            if i == len(pattern):
                out.append(b"[^\n]*+")
            elif pattern[i:i + 1] == b"*":
                out.append(b"[^\n*]*+(?=\\*)")
            else:
                # the literal that follows matches the byte the star stops at
                out.append(b"[^\n" + re.escape(pattern[i:i + 1]) + b"]*+")
        else:
            out.append(re.escape(ch))
    out.append(b"(?=\n)")
    return re.compile(b"".join(out))


class Selection:
    """One directory's lines of a buffer: those in ``lines`` when
    ``taken``, else all but those."""

    __slots__ = ("taken", "lines")

    def __init__(self) -> None:
        self.taken = False
        self.lines: set[int] = set()


def select(actions: list[Action], regexes: list["re.Pattern[bytes] | None"], buf: bytes
           ) -> list[Selection]:
    """The selection at each directory, ``e`` and ``=`` action, in order,
    for every line of buf (which starts and ends with a newline); lines are
    known by where they start."""
    sel = Selection()
    out: list[Selection] = []
    for a, rx in zip(actions, regexes):
        if a.kind in TAPS:
            copy = Selection()
            copy.taken, copy.lines = sel.taken, set(sel.lines)
            out.append(copy)
            continue
        if a.arg == b"*":
            sel.taken, sel.lines = a.kind == "-", set()
            continue
        if rx is None:
            continue
        matched = {m.start() + 1 for m in rx.finditer(buf)}
        # + adds lines to what is taken / removes them from what is left out
        if (a.kind == "+") == sel.taken:
            sel.lines |= matched
        else:
            sel.lines -= matched
    return out


def pieces(sel: Selection, buf: bytes) -> list[bytes | memoryview]:
    """The lines of buf that sel takes, as slices (buf's first newline is
    not part of any line)."""
    view = memoryview(buf)
    if not sel.taken and not sel.lines:
        return [view[1:]]
    out: list[bytes | memoryview] = []
    pos = 1
    for start in sorted(sel.lines):
        end = buf.index(b"\n", start) + 1
        if sel.taken:
            out.append(view[start:end])
        else:
            if start > pos:
                out.append(view[pos:start])
            pos = end
    if not sel.taken and pos < len(buf):
        out.append(view[pos:])
    return out


def alerts(sel: Selection, buf: bytes) -> bytes:
    """What ``e`` prints for the lines sel takes: each cut to 200 bytes
    and ``...`` when longer."""
    text = b"\n" + b"".join(pieces(sel, buf))
    return _LONG_ALERT.sub(b"\n\\1...", text)[1:]


def last_line(sel: Selection, buf: bytes) -> bytes | None:
    """The last line sel takes, without its newline: what an ``=`` file
    holds after the buffer."""
    if sel.taken:
        if not sel.lines:
            return None
        start = max(sel.lines)
    else:
        end = len(buf) - 1
        while True:
            start = buf.rfind(b"\n", 0, end) + 1
            if not start:
                return None
            if start not in sel.lines:
                break
            end = start - 1
    return buf[start:buf.index(b"\n", start)]
