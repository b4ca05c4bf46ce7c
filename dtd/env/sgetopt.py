"""djb's sgetopt, the option parser of softlimit and setlock.

What differs from POSIX getopt and shows: any argument starting with ``--``
ends the options and is dropped (not only ``--``); a lone ``-`` is an operand;
the diagnostics are ``PROG: illegal option -- c`` and ``PROG: option requires
an argument -- c``, where PROG is the last component of argv[0].
"""

from __future__ import annotations

import os
import sys

from dtd.diag import say

# the typing module costs about 2 ms at start-up, paid before every child
# runs; mypy takes any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

PROBLEM = ord("?")


def progname(default: str, argv: list[str] | None) -> bytes:
    """The name sgetopt prints: the base name of how we were invoked."""
    if argv is None and sys.argv and sys.argv[0]:
        return os.fsencode(sys.argv[0]).rpartition(b"/")[2]
    return default.encode()


class Options:
    """Iterate for (option byte, argument or None); then ``rest`` holds the
    operands. A problem is reported on stderr and yields PROBLEM, after which
    callers print their usage, as the reference's do."""

    def __init__(self, prog: bytes, args: list[bytes], spec: bytes) -> None:
        self.prog = prog
        self.args = args
        self.ind = 0
        self._pos = 0
        self._spec: dict[int, bool] = {}
        i = 0
        while i < len(spec):
            takes = spec[i + 1:i + 2] == b":"
            self._spec.setdefault(spec[i], takes)
            i += 2 if takes else 1

    @property
    def rest(self) -> list[bytes]:
        return self.args[self.ind:]

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        args = self.args
        while self.ind < len(args):
            arg = args[self.ind]
            if self._pos and self._pos >= len(arg):
                self.ind += 1
                self._pos = 0
                continue
            if not self._pos:
                if arg[:1] != b"-" or len(arg) == 1:
                    return
                if arg[1:2] == b"-":
                    self.ind += 1
                    return
                self._pos = 1
            c = arg[self._pos]
            self._pos += 1
            if c not in self._spec:
                say(self.prog, b": illegal option -- ", bytes((c,)))
                yield PROBLEM, None
                continue
            if not self._spec[c]:
                yield c, None
                continue
            optarg = arg[self._pos:]
            self.ind += 1
            self._pos = 0
            if not optarg:
                if self.ind >= len(args):
                    say(self.prog, b": option requires an argument -- ", bytes((c,)))
                    yield PROBLEM, None
                    return
                optarg = args[self.ind]
                self.ind += 1
            yield c, optarg
