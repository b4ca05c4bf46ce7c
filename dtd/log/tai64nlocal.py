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

Speed: whole buffers, not lines. A buffer is split at every "\n@"; when
every stamp in it has 24 digits (one translate checks them all at once),
the conversion is a chain of C-level maps, with one localtime per distinct
second; other buffers take the general, per-stamp path.
"""

import os
import re
import signal
import sys
import time
from array import array
from operator import itemgetter

from dtd.diag import EXIT_TEMP
from dtd.log.tai64n import write_all
from dtd.tai64 import BASE

STAMP = re.compile(rb"^@([0-9a-f]*)", re.MULTILINE)
HEX_RUN = re.compile(rb"@[0-9a-f]*")
# a stamp's first 25 bytes seen through KIND: 24 lowercase hex digits, then
# the byte that ends the stamp
KIND = bytes(b"h"[0] if chr(c) in "0123456789abcdef" else b"n"[0] for c in range(256))
STAMP24 = b"h" * 24 + b"n"
HEAD = itemgetter(slice(0, 25))
REST = itemgetter(slice(24, None))
NINE = b"%09d".__mod__
LINE = b"\n%s%09d%s"  # date, nanoseconds, the rest of the line
SECONDS = [b"%02d." % sec for sec in range(60)]
MINUTES = [b"%02d:" % m for m in range(60)]
CLOCK = [m + sec for m in MINUTES for sec in SECONDS]  # an hour of "MM:SS."
BYTESWAP = sys.byteorder == "little"  # the stamp's nanoseconds are big-endian
ULONG = 1 << 64
REGISTER = (1 << 96) - 1
CACHE_MAX = 65536
PENDING_MAX = 65536
BUFSIZE = 131072  # measured: 64 KiB costs 10-20% more, 1 MiB falls out of cache


def local(label: int) -> time.struct_time | None:
    """localtime of a TAI64 seconds label, None where it fails."""
    t = (label - BASE) % ULONG
    if t >= ULONG // 2:
        t -= ULONG
    try:
        return time.localtime(t)
    except (OverflowError, OSError, ValueError):
        return None


def minute(tm: time.struct_time) -> bytes:
    # djb prints the year with fmt_ulong: a negative one wraps
    return b"%d-%02d-%02d %02d:%02d:" % (tm.tm_year % ULONG, tm.tm_mon, tm.tm_mday,
                                         tm.tm_hour, tm.tm_min)


class Dates(dict[int, bytes | None]):
    """TAI64 seconds label -> ``YYYY-MM-DD HH:MM:SS.``, or None when
    localtime cannot show that time.

    localtime is slow next to the rest, and a quiet log has a new second on
    every line: a miss fills the minute around the label, a second miss in
    the same hour the whole hour, by arithmetic within a local hour whose
    first and last seconds localtime has confirmed (no change of UTC offset, no leap second inside it: tz
    data never changes the offset twice within an hour). An irregular hour
    is done second by second."""

    def __init__(self) -> None:
        super().__init__()
        self.hour = (-7200, b"")  # the label of a regular local hour's start, its prefix

    def __missing__(self, label: int) -> bytes | None:
        if len(self) >= CACHE_MAX:
            self.clear()
        start, prefix = self.hour
        if not start <= label < start + 3600:
            tm = local(label)
            if tm is None:
                self[label] = None
                return None
            start = label - 60 * tm.tm_min - tm.tm_sec
            first, last = local(start), local(start + 3599)
            if not (tm.tm_sec < 60 and first and last and first[:6] == tm[:4] + (0, 0)
                    and last[:6] == tm[:4] + (59, 59)):
                value = minute(tm) + b"%02d." % tm.tm_sec
                self[label] = value
                return value
            prefix = minute(tm)[:-3]
            self.hour = (start, prefix)
            # the minute first: stamps out of order may not stay in this hour
            m = (label - start) // 60 * 60
            self.update(zip(range(start + m, start + m + 60),
                            map(prefix.__add__, CLOCK[m:m + 60])))
        else:
            # a second miss in this hour: the rest of it in one call, in C
            # (minute by minute, the Python around it cost a quiet log 8%)
            self.update(zip(range(start, start + 3600), map(prefix.__add__, CLOCK)))
        return self[label]


def column(heads: bytes, start: int, width: int, code: str) -> "array[int]":
    """Hex digits start to start+width of every stamp, as numbers."""
    k = len(heads) // 25
    digits = bytearray(width * k)
    for j in range(width):
        digits[j::width] = heads[start + j::25]
    numbers = array(code, bytes.fromhex(digits.decode()))
    if BYTESWAP:
        numbers.byteswap()
    return numbers


class Converter:
    """Input buffers in, output buffers out, as soon as each byte's fate is
    known: a line without a stamp goes out at once, a stamp waits for the
    byte that ends it."""

    def __init__(self) -> None:
        self.dates = Dates()
        self.mid = False  # the start of the current line is already out
        self.pending = b""  # a line start "@hex..." whose stamp has not ended

    def one(self, digits: bytes) -> bytes:
        """Any number of hex digits, read as the reference's register does."""
        v = int(digits, 16) & REGISTER if digits else 0
        date = self.dates[v >> 32]
        if date is None:
            return b"@" + digits
        return date + NINE(v & 0xFFFFFFFF)

    def lines(self, text: bytes) -> bytes:
        """text starts at a line start; every stamp in it has ended."""
        # "\n@" starts every stamped line but the first: split there, in C
        pieces = (b"\n" + text).split(b"\n@")
        k = len(pieces) - 1
        if not k:
            return text
        stamped = pieces[1:]
        # the first 25 bytes of every stamped line, side by side: byte j of
        # every stamp is heads[j::25]
        heads = b"".join(map(HEAD, stamped))
        if heads.translate(KIND) != STAMP24 * k:
            return self.general(text)  # a stamp of another length
        if all(heads[j::25] == heads[j:j + 1] * k for j in range(16)):
            dates = [self.dates[int(heads[:16], 16)]] * k  # one second, a busy log
        else:
            dates = list(map(self.dates.__getitem__, column(heads, 0, 16, "Q")))
        if None in dates:
            return self.general(text)
        args: list[object] = [None] * (3 * k)
        args[0::3] = dates
        args[1::3] = column(heads, 16, 8, "I")
        args[2::3] = map(REST, stamped)
        if pieces[0]:  # "\n" and what comes before the first stamp
            return pieces[0][1:] + (LINE * k) % tuple(args)
        return (LINE * k)[1:] % tuple(args)

    def general(self, text: bytes) -> bytes:
        """Stamps of any length, and times localtime cannot show."""
        pieces = STAMP.split(text)
        pieces[1::2] = map(self.one, pieces[1::2])
        return b"".join(pieces)

    def feed(self, data: bytes) -> bytes:
        """What can be written now that data has been read."""
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
                # only the last 24 digits count: an endless stamp costs no
                # endless memory (it would only show, cut, where the
                # reference crashes)
                self.pending = tail if len(tail) <= PENDING_MAX else b"@" + tail[-24:]
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
