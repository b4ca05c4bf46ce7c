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
the conversion is a chain of C-level maps. localtime is slow next to the
rest, and a quiet log has a new second on every line, so dates are made by
the day (see Days) and a buffer's dates are looked up in one of three ways:
all in one second (a busy log), in time order (runs of lines within a day:
a quiet log, a sparse one), any (day and second apart, line by line). Other
buffers take the general, per-stamp path.
"""

import os
import re
import signal
import sys
import time
from array import array
from bisect import bisect_left
from functools import cache
from collections.abc import Iterable, Sequence
from itertools import repeat

from dtd.diag import EXIT_TEMP
from dtd.log.tai64n import write_all
from dtd.tai64 import BASE

STAMP = re.compile(rb"^@([0-9a-f]*)", re.MULTILINE)
HEX_RUN = re.compile(rb"@[0-9a-f]*")
# a stamped line split off the line before it: the 25 bytes after "\n@" as
# its head, and the line going on after 24 of them
SPLIT = re.compile(rb"\n@(?=(.{25})).{24}", re.DOTALL)
# a stamp's first 25 bytes seen through KIND: 24 lowercase hex digits, then
# the byte that ends the stamp
KIND = bytes(b"h"[0] if chr(c) in "0123456789abcdef" else b"n"[0] for c in range(256))
STAMP24 = b"h" * 24 + b"n"
# the end of a line of output: nanoseconds, the rest of the line
TAIL = b"%09d%s"
BYTESWAP = sys.byteorder == "little"  # the stamp's nanoseconds are big-endian
ORDER = sys.byteorder  # of numbers in an array, and of an array as one big number
ULONG = 1 << 64
REGISTER = (1 << 96) - 1
CACHE_MAX = 65536
PENDING_MAX = 65536
BUFSIZE = 131072  # measured: 64 KiB costs 10-20% more, 1 MiB falls out of cache


# a format of the output's k lines, and the columns of dates it takes
# before the nanoseconds: a date the lines share is in the format itself
# (measured: 40 ns a line less than a "%s" of it; dates have no "%")
Dates = tuple[bytes, tuple[Sequence[bytes | None], ...]]


def local(label: int) -> time.struct_time | None:
    """localtime of a TAI64 seconds label, None where it fails."""
    t = (label - BASE) % ULONG
    if t >= ULONG // 2:
        t -= ULONG
    try:
        return time.localtime(t)
    except (OverflowError, OSError, ValueError):
        return None


def wall(tm: time.struct_time) -> int:
    """What tm's clock shows, as seconds since 1970-01-01 00:00:00 of that
    clock (proleptic Gregorian, a leap second's :60 as the next second)."""
    y = tm.tm_year - 1
    days = 365 * y + y // 4 - y // 100 + y // 400 - 719162 + tm.tm_yday - 1
    return days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec


def shift_at(label: int) -> int | None:
    """How far the wall clock is ahead of the labels at label (the shift
    of Days), None where localtime cannot show it."""
    tm = local(label)
    return None if tm is None else wall(tm) - label


def minute(tm: time.struct_time) -> bytes:
    # djb prints the year with fmt_ulong: a negative one wraps
    return b"%d-%02d-%02d %02d:%02d:" % (tm.tm_year % ULONG, tm.tm_mon, tm.tm_mday,
                                         tm.tm_hour, tm.tm_min)


def at(shift: int, moment: int) -> time.struct_time | None:
    """The clock at a moment of the wall clock (its seconds since 1970), if
    it is `shift` ahead of the label there."""
    tm = local(moment - shift)
    return tm if tm is not None and wall(tm) == moment else None


@cache
def day_clock() -> list[bytes]:
    """``HH:MM:SS.`` for every second of a day, made when a log first needs
    it, a column of characters at a time and then split (measured: 6 ms
    once, against 18 ms for a string at a time; 4 MiB)."""
    def runs(values: "Iterable[int]", n: int) -> bytes:
        return b"".join(b"%d" % v * n for v in values)
    text = bytearray(86400 * 10)
    text[0::10] = runs((h // 10 for h in range(24)), 3600)
    text[1::10] = runs((h % 10 for h in range(24)), 3600)
    text[3::10] = runs((m // 10 for m in range(60)), 60) * 24
    text[4::10] = runs((m % 10 for m in range(60)), 60) * 24
    text[6::10] = runs(range(6), 10) * 1440
    text[7::10] = b"0123456789" * 8640
    text[2::10] = text[5::10] = b":" * 86400
    text[8::10] = b"." * 86400
    text[9::10] = b"\n" * 86400
    return bytes(text).splitlines()


class Span(dict[int, bytes | None]):
    """A span of the wall clock, by number (its seconds // LENGTH) ->
    ``YYYY-MM-DD ``, for the labels `shift` seconds behind that clock; None
    for a span in which the clock is not that far ahead of every label (a
    change of UTC offset, a leap second, a time localtime cannot show).
    The clock is asked at the span's first label and at the last of each
    `step` seconds of it."""

    LENGTH = 0

    def __init__(self, shift: int, step: int) -> None:
        super().__init__()
        self.shift = shift
        self.step = step
        self.mixed: set[int] = set()  # spans of None with some time of this shift

    def __missing__(self, n: int) -> bytes | None:
        if len(self) >= CACHE_MAX:
            self.clear()
            self.mixed.clear()
        start = n * self.LENGTH
        first, value = at(self.shift, start), None
        ends = (at(self.shift, end) for end in range(start + self.step - 1, start + self.LENGTH,
                                                     self.step))
        if first is not None and all(ends):
            value = minute(first)[:-6]
        elif first is not None or any(ends):
            # a change within the span; where none of the clocks asked has
            # this shift, no time of it has (one on the other side of a change)
            self.mixed.add(n)
        self[n] = value
        return value


class Hours(Span):
    """Hours, vouched for by the clock at their first and last label: tz
    data never changes the offset twice within an hour."""

    LENGTH = 3600

    def __init__(self, shift: int) -> None:
        super().__init__(shift, 3600)


class Days(Span):
    """Days. Two localtime calls vouch for one: the clock at its first and
    last label. Within a vouched day a label's date is arithmetic: the day's
    date and day_clock()[second of the day]. That holds because tz data
    never changes the offset twice within a day (the least time between two
    changes anywhere in tzdata 2025b is four days: Africa/Freetown, 1939;
    test_tai64nlocal checks the zones of the machine it runs on) and leap
    seconds only ever add, so a change in the day shows at one end. Under a
    $TZ that spells out its own rules, which may keep summer time for less
    than a day, the clock is asked at the end of every hour too. The hours
    of a day that fails are vouched for one by one (`hours`)."""

    LENGTH = 86400

    def __init__(self, shift: int) -> None:
        super().__init__(shift, 3600 if "," in os.environ.get("TZ", "") else 86400)
        self.hours = Hours(shift)


class Seconds(dict[int, bytes | None]):
    """TAI64 seconds label -> ``YYYY-MM-DD HH:MM:SS.`` by localtime, None
    where it fails: dates one at a time."""

    def __missing__(self, label: int) -> bytes | None:
        if len(self) >= CACHE_MAX:
            self.clear()
        tm = local(label)
        value = None if tm is None else minute(tm) + b"%02d." % tm.tm_sec
        self[label] = value
        return value


def column(heads: bytes, start: int, width: int, code: str) -> "array[int]":
    """Hex digits start to start+width of every stamp, as numbers (the low
    digits of each when code's items hold more)."""
    k = len(heads) // 25
    size = 2 * array(code).itemsize
    digits = bytearray(b"0" * (size * k))
    for j in range(width):
        digits[size - width + j::size] = heads[start + j::25]
    numbers = array(code, bytes.fromhex(digits.decode()))
    if BYTESWAP:
        numbers.byteswap()
    return numbers


class Converter:
    """Input buffers in, output buffers out, as soon as each byte's fate is
    known: a line without a stamp goes out at once, a stamp waits for the
    byte that ends it."""

    def __init__(self) -> None:
        self.seconds = Seconds()
        self.zones: dict[int, Days] = {}  # by shift: a zone has a few
        self.mid = False  # the start of the current line is already out
        self.pending = b""  # a line start "@hex..." whose stamp has not ended

    def days(self, shift: int) -> Days:
        days = self.zones.get(shift)
        if days is None:
            if len(self.zones) >= 64:
                self.zones.clear()
            days = self.zones[shift] = Days(shift)
        return days

    def dates(self, heads: bytes, k: int) -> Dates | None:
        """The dates of k stamps of 24 digits, None unless every stamp has
        one."""
        if all(heads[j::25] == heads[j:j + 1] * k for j in range(15, -1, -1)):
            date = self.seconds[int(heads[:16], 16)]  # one second, a busy log
            return None if date is None else ((b"\n" + date + TAIL) * k, ())
        if all(heads[j::25] == heads[j:j + 1] * k for j in range(9)):
            dates = self.ordered(heads, k)
            if dates is not None:
                return dates
        return self.sparse(heads)

    def ordered(self, heads: bytes, k: int) -> Dates | None:
        """Labels that differ only in their low 28 bits, in time order or
        nearly (a quiet log, a sparse one): lines in runs within one day,
        each run's end found by bisection. A run's lines share its day's
        date; their seconds of the day come from one subtraction of every
        label's run start at once, the labels being the 32-bit digits of one
        big number: no borrow crosses between digits while each label is at
        or after its run's start, and a digit of 86400 or more shows one
        that is not. None then, when a day has a change of offset (sparse
        takes it hour by hour), or when runs are so short that per-line
        arithmetic (sparse) costs less."""
        labels = column(heads, 9, 7, "I")  # small ints: the low 28 bits
        # measured: runs of 4 lines cost what sparse does; give up well
        # before, as the runs done so far are wasted (and in time order,
        # the first and last labels tell)
        most = k // 8 + 2
        if abs(labels[-1] - labels[0]) >= most * 86400:
            return None
        high = int(heads[:9], 16) << 28
        whole = shift_at(high + labels[0])  # from whole labels to the clock
        if whole is None:
            return None
        shift = whole + high  # from these labels to the clock
        days = self.days(whole)
        forms = []
        starts = []
        i = 0
        for _ in range(most):
            day = (labels[i] + shift) // 86400
            date = days[day]
            start = day * 86400 - shift
            if date is None or start < 0:
                return None
            j = max(bisect_left(labels, start + 86400, i), i + 1)
            forms.append((b"\n" + date + b"%s" + TAIL) * (j - i))
            starts.append(start.to_bytes(4, ORDER) * (j - i))
            i = j
            if i == k:
                break
        else:
            return None
        seconds = int.from_bytes(labels, ORDER) - int.from_bytes(b"".join(starts), ORDER)
        if seconds < 0:
            return None
        clock = day_clock()
        try:
            clocks = [clock[s] for s in array("I", seconds.to_bytes(4 * k, ORDER))]
        except IndexError:
            return None
        return b"".join(forms), (clocks,)

    def sparse(self, heads: bytes) -> Dates | None:
        """Any labels: a day and a second of it for each (two columns: one
        more field to format costs less than joining them here), hour by
        hour in a day with a change of offset. The clock's shift at the
        first line serves the lines it vouches for, the shift at the first
        of the others those across a change, and so on for a few; the lines
        of the very hour of a change get their date by localtime."""
        labels = column(heads, 0, 16, "Q")
        k = len(labels)
        clock = day_clock()
        dates: list[bytes | None] = []
        clocks: list[bytes] = []
        first = 0  # the first line without a date
        for _ in range(3):
            shift = shift_at(labels[first])
            if shift is None:
                return None
            days = self.days(shift)
            ds, seconds = zip(*map(divmod, map(shift.__add__, labels), repeat(86400)))
            found = list(map(days.__getitem__, ds))
            if None in found:
                for i in [i for i, date in enumerate(found) if date is None]:
                    if ds[i] in days.mixed:
                        found[i] = days.hours[(labels[i] + shift) // 3600]
            if not dates:
                dates, clocks = found, list(map(clock.__getitem__, seconds))
            else:
                clocks = [c if d is not None else clock[s] for d, c, s in zip(dates, clocks, seconds)]
                dates = [d if d is not None else f for d, f in zip(dates, found)]
            if None not in dates or dates[first] is None:
                break  # done, or its own shift fails the first line left
            first = dates.index(None, first)
        if None in dates:
            for i in [i for i, date in enumerate(dates) if date is None]:
                dates[i], clocks[i] = self.seconds[labels[i]], b""
            if None in dates:
                return None
        return (b"\n%s%s" + TAIL) * k, (dates, clocks)

    def one(self, digits: bytes) -> bytes:
        """Any number of hex digits, read as the reference's register does."""
        v = int(digits, 16) & REGISTER if digits else 0
        date = self.seconds[v >> 32]
        if date is None:
            return b"@" + digits
        return date + b"%09d" % (v & 0xFFFFFFFF)

    def lines(self, text: bytes, mid: bool = False) -> bytes:
        """Every stamp in text has ended; text starts at a line start, or
        in the middle of a line when mid."""
        # each stamped line follows a "\n": one before the first line too
        lined = text if mid else b"\n" + text
        if lined.find(b"\n@", max(0, len(lined) - 26)) >= 0:
            # SPLIT would leave this "\n@" in the line before: too few
            # bytes follow it for a stamp of 24 digits that has ended
            return self.general(text, mid)
        # in C: the text before the first stamped line, then each stamped
        # line's head and the rest of it (measured: a regex finds "\n@"
        # faster than bytes.split does)
        parts = SPLIT.split(lined)
        if len(parts) == 1:
            return text
        k = len(parts) // 2
        # the heads side by side: byte j of every stamp is heads[j::25]
        heads = b"".join(parts[1::2])
        if heads.translate(KIND) != STAMP24 * k:
            return self.general(text, mid)  # a stamp of another length
        dates = self.dates(heads, k)
        if dates is None:
            return self.general(text, mid)
        form, columns = dates
        n = len(columns) + 2
        args: list[object] = [None] * (n * k + 1)
        args[0] = parts[0] if mid else parts[0][1:]
        for i, part in enumerate(columns, 1):
            args[i::n] = part
        args[n - 1::n] = column(heads, 16, 8, "I")
        args[n::n] = parts[2::2]
        if lined is not text and not parts[0]:
            form = form[1:]  # the "\n" before the first line was our own
        # one piece of output, without copying the text before or after
        return (b"%s" + form) % tuple(args)

    def general(self, text: bytes, mid: bool = False) -> bytes:
        """Stamps of any length, and times localtime cannot show."""
        if mid:
            i = text.find(b"\n") + 1
            return text[:i] + self.general(text[i:]) if i else text
        pieces = STAMP.split(text)
        pieces[1::2] = map(self.one, pieces[1::2])
        return b"".join(pieces)

    def feed(self, data: bytes) -> bytes:
        """What can be written now that data has been read."""
        buf = self.pending + data
        self.pending = b""
        mid = self.mid
        j = buf.rfind(b"\n") + 1
        if mid and not j:
            return buf
        tail = buf[j:]
        self.mid = False
        if tail:
            m = HEX_RUN.match(tail)
            if m and m.end() == len(tail):
                # only the last 24 digits count: an endless stamp costs no
                # endless memory (it would only show, cut, where the
                # reference crashes)
                self.pending = tail if len(tail) <= PENDING_MAX else b"@" + tail[-24:]
                buf = buf[:j]
            else:
                self.mid = True
                if tail[:1] == b"@" and len(tail) < 26:
                    # a short stamp would send the whole buffer the slow way
                    return self.lines(buf[:j], mid) + self.lines(tail)
        return self.lines(buf, mid) if buf else b""


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
