"""tai64nlocal: turn a leading TAI64N stamp into local time.

``@4000000037c219bf2ef02e94 mark`` becomes ``1999-08-24 04:04:05.787492500
mark`` in the time zone of $TZ (or /etc/localtime); lines that do not start
with ``@`` pass through untouched.

The reference reads a stamp as every lowercase hex digit after the ``@``,
shifted through a 96-bit register (64 bits of seconds, 32 of nanoseconds),
so a stamp of another length still gives a date when the register holds a
time localtime can show, and nanoseconds of 10^9 or more print with ten
digits. We read it the same way. Where localtime cannot show the time (a
short stamp, ``@`` followed by text) the reference dies of SIGSEGV; we pass
the line through untouched instead.

Speed: whole buffers are cut at line-leading stamps with one regular
expression; when every stamp in the buffer has 24 digits the conversion is
a chain of C-level maps, with one localtime per distinct second.
"""

import os
import re
import signal
import sys
import time
from itertools import repeat
from operator import itemgetter

from dtd.diag import EXIT_TEMP
from dtd.log.tai64n import BUFSIZE, write_all
from dtd.tai64 import BASE

STAMP = re.compile(rb"^@([0-9a-f]*)", re.MULTILINE)
HEX_RUN = re.compile(rb"@[0-9a-f]*")
SECS = itemgetter(slice(0, 16))
NANOS = itemgetter(slice(16, 24))
NINE = b"%09d".__mod__
ULONG = 1 << 64
REGISTER = (1 << 96) - 1
CACHE_MAX = 4096


class Dates(dict[bytes, bytes | None]):
    """16 hex digits of seconds -> ``YYYY-MM-DD HH:MM:SS.``, or None when
    localtime cannot show that time."""

    def __missing__(self, key: bytes) -> bytes | None:
        if len(self) >= CACHE_MAX:
            self.clear()
        t = (int(key, 16) - BASE) % ULONG
        if t >= ULONG // 2:
            t -= ULONG
        try:
            tm = time.localtime(t)
        except (OverflowError, OSError, ValueError):
            value = None
        else:
            # djb prints the year with fmt_ulong: a negative one wraps
            year = tm.tm_year % ULONG
            value = b"%d-%02d-%02d %02d:%02d:%02d." % (
                year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        self[key] = value
        return value


class Converter:
    def __init__(self) -> None:
        self.dates = Dates()
        self.mid = False  # the start of the current line is already out
        self.pending = b""  # a line start "@hex..." whose stamp has not ended

    def one(self, digits: bytes) -> bytes:
        """Any number of hex digits, read as the reference's register does."""
        v = int(digits, 16) & REGISTER if digits else 0
        date = self.dates[b"%016x" % (v >> 32)]
        if date is None:
            return b"@" + digits
        return date + NINE(v & 0xFFFFFFFF)

    def lines(self, text: bytes) -> bytes:
        """text starts at a line start; every stamp in it has ended."""
        pieces = STAMP.split(text)
        if len(pieces) == 1:
            return text
        stamps = pieces[1::2]
        out: list[bytes] = [b""] * (len(pieces) + len(stamps))
        out[0::3] = pieces[0::2]
        if set(map(len, stamps)) == {24}:
            dates = list(map(self.dates.__getitem__, map(SECS, stamps)))
            if None not in dates:
                out[1::3] = dates  # type: ignore[assignment]
                out[2::3] = map(NINE, map(int, map(NANOS, stamps), repeat(16)))
                return b"".join(out)
        out[1::3] = map(self.one, stamps)
        out[2::3] = repeat(b"", len(stamps))
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        buf = self.pending + data
        self.pending = b""
        head = b""
        if self.mid:
            i = buf.find(b"\n")
            if i < 0:
                return buf
            head, buf = buf[:i + 1], buf[i + 1:]
            self.mid = False
        j = buf.rfind(b"\n") + 1
        whole, tail = buf[:j], buf[j:]
        body = self.lines(whole)
        if tail:
            m = HEX_RUN.match(tail)
            if m and m.end() == len(tail):
                self.pending = tail
            else:
                body += self.lines(tail)
                self.mid = True
        return head + body


def main(argv: list[str] | None = None) -> int:
    """tai64nlocal takes no arguments and ignores any it is given."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    conv = Converter()
    try:
        while True:
            try:
                data = os.read(0, BUFSIZE)
            except InterruptedError:
                continue
            if not data:
                # an unfinished stamp at the end is dropped, as the reference drops it
                return 0
            out = conv.feed(data)
            if out:
                write_all(1, out)
    except OSError:
        return EXIT_TEMP


if __name__ == "__main__":
    sys.exit(main())
