"""tai64nlocal against Debian's /usr/bin/tai64nlocal: fixed stamps in several
time zones, stamps of odd shapes read as the reference reads them, lines
without stamps, streaming, chunk boundaries, and the one deliberate
difference (lines the reference dies on pass through here)."""

import os
import random
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import Procs, have_ref, ours, ref
from dtd.log.tai64nlocal import Converter
from test_tai64n import read_until
from tooltools import ENV, compare, run

pytestmark = pytest.mark.skipif(not have_ref("tai64nlocal"), reason="daemontools not installed")

ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/Paris",
         # what glibc makes of odd $TZ values, the same for both
         "", "Nowhere/Bogus", ":America/New_York", "EST5EDT,M3.2.0,M11.1.0", "<+0330>-3:30"]
if Path("/usr/share/zoneinfo/right/UTC").exists():
    ZONES.append("right/UTC")  # leap seconds counted: :60 can show

LINES = [
    b"@4000000037c219bf2ef02e94 mark",  # the man page's example
    b"@4000000037c219bf2ef02e94",  # nothing after the stamp
    b"@4000000037c219bf2ef02e94\tafter a tab",
    b"@4000000037c219bf2ef02e94mark",  # ended by a non-hex letter
    b"@4000000037c219bf2ef02e94 @4000000037c219bf2ef02e94 only the first",
    b"@400000000000000000000000 the epoch, minus 10 s",
    b"@3fffffffffffffff00000000 before 1970",
    b"@4000000000000000ffffffff nanoseconds past 10^9",
    b"@4000000037c219bf3b9aca00 exactly 10^9",
    b"@400000007fffffffffffffff 2038",
    b"@4000000100000000ffffffff 2106",
    b"@00004000000037c219bf2ef02e94 leading zeros are shifted out",
    b"@ff4000000037c219bf2ef02e94 so are other digits beyond 96 bits",
    b"@40000000496c5e4a00000000 2009-01-01 around a leap second",
    b"@40000000485f21ca00000000 summer 2008",
    b"@4000000045a1d3ca00000000 winter 2007",
    b"@3ffff6e7b18d600a00000005 316,000 years ago: the year wraps as unsigned",
    b"@3ffffff1886e090900000005 year 0",
    b"@400009184e72a00a00000005 year 318857",
    b"@40f0c29d8688b1ca00000005 the last year localtime can show",
    b"no stamp @4000000037c219bf2ef02e94",
    b" @4000000037c219bf2ef02e94 leading space",
    b"",
    b"plain text",
    b"\xff\x00 binary",
]
# where localtime cannot show the time, the reference dereferences NULL
CRASHES = [
    b"@", b"@ x", b"@4000000037c219bf short", b"@4000000037C219BF2EF02E94 upper case",
    b"@5000000000000000 y", b"@1 x", b"@zz",
]


@pytest.mark.parametrize("tz", ZONES)
def test_fixed_stamps(tz: str) -> None:
    data = b"\n".join(LINES) + b"\n"
    got = compare("tai64nlocal", [], env=dict(ENV, TZ=tz), stdin=data)
    assert got[0] == 0 and len(got[1].split(b"\n")) == len(LINES) + 1


def test_example_of_the_man_page() -> None:
    got = compare("tai64nlocal", [], env=dict(ENV, TZ="America/Los_Angeles"),
                  stdin=b"@4000000037c219bf2ef02e94 mark\n")
    # the man page says 21:03:43 (TAI with its leap seconds); the binary,
    # which does not count them, prints this
    assert got[1] == b"1999-08-23 21:04:05.787492500 mark\n"


def test_timezone_from_etc_localtime() -> None:
    env = {k: v for k, v in ENV.items() if k != "TZ"}
    compare("tai64nlocal", [], env=env, stdin=b"\n".join(LINES) + b"\n")


@pytest.mark.parametrize("end", [b"", b"@", b"@4000000037c2", b"@4000000037c219bf2ef02e94",
                                 b"abc", b"@4000000037c219bf2ef02e94 partial"])
def test_end_of_input(end: bytes) -> None:
    """An unfinished stamp at the very end is dropped; a partial line is not."""
    compare("tai64nlocal", [], env=dict(ENV, TZ="UTC"), stdin=b"x\n" + end)


@pytest.mark.parametrize("line", CRASHES)
def test_lines_the_reference_dies_on_pass_through(line: bytes) -> None:
    data = b"before\n" + line + b"\nafter\n"
    want = run([ref("tai64nlocal")], env=dict(ENV, TZ="UTC"), stdin=data)
    assert want[0] == -11  # SIGSEGV: the reason we differ here
    got = run([ours("tai64nlocal")], env=dict(ENV, TZ="UTC"), stdin=data)
    assert got == (0, data, b"")


def random_lines(rnd: random.Random, n: int) -> bytes:
    hexd = "0123456789abcdef"
    out = []
    for i in range(n):
        k = rnd.random()
        if k < 0.6:
            secs = "40000000%08x" % rnd.randrange(0, 2**32)
            out.append(("@%s%s line %d" % (secs, "".join(rnd.choices(hexd, k=8)), i)).encode())
        elif k < 0.7:
            out.append(b"@400000006" + "".join(rnd.choices(hexd, k=15)).encode() + b" x" * (i % 90))
        elif k < 0.8:
            out.append(b"")
        else:
            out.append(bytes(rnd.choices(b"ab @\t\xff", k=rnd.randrange(0, 300))).lstrip(b"@"))
    return b"\n".join(out) + b"\n"


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_large_input(tz: str) -> None:
    data = random_lines(random.Random(tz), 20000)
    got = compare("tai64nlocal", [], env=dict(ENV, TZ=tz), stdin=data)
    assert got[1].count(b"\n") == 20000


@pytest.mark.parametrize("which", ["ref", "ours"])
def test_streams(procs: Procs, which: str) -> None:
    prog = ref("tai64nlocal") if which == "ref" else ours("tai64nlocal")
    p = procs.start([prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(ENV, TZ="UTC"))
    assert p.stdin and p.stdout
    out = p.stdout.fileno()
    p.stdin.write(b"@4000000037c219bf2ef02e94 mark\n")
    p.stdin.flush()
    assert read_until(out, 35) == b"1999-08-24 04:04:05.787492500 mark\n"
    # text without a stamp comes out before its line is complete; a stamp is
    # converted once the byte that ends it has arrived
    p.stdin.write(b"plain")
    p.stdin.flush()
    assert read_until(out, 5) == b"plain"
    p.stdin.write(b" text\n@4000000037c2")
    p.stdin.flush()
    assert read_until(out, 6) == b" text\n"
    p.stdin.write(b"19bf2ef02e94")
    p.stdin.flush()
    p.stdin.write(b" part")
    p.stdin.flush()
    assert read_until(out, 34) == b"1999-08-24 04:04:05.787492500 part"
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def convert(chunks: list[bytes]) -> bytes:
    c = Converter()
    return b"".join(c.feed(chunk) for chunk in chunks)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.integers(0, 4000), max_size=20))
def test_chunk_boundaries_do_not_matter(seed: int, cuts: list[int]) -> None:
    data = random_lines(random.Random(seed), 40) + b"@4000000037c219bf2ef02e94 no newline"
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert convert(chunks) == Converter().general(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20), st.lists(st.binary(max_size=40), max_size=30),
       st.sampled_from(["one second", "seconds apart", "minutes apart", "anywhere"]))
def test_fast_and_general_paths_agree(first: bytes, lines: list[bytes], spread: str) -> None:
    """Stamps of 24 digits take a fast path: it must say what the general
    one says, within one second (a busy log), a few seconds apart in any
    order and across the end of an hour (a quiet one), minutes apart in
    time order but for some (a sparse one), or anywhere, with or without
    text before the first stamp."""
    def stamp(i: int, line: bytes) -> bytes:
        digits = (line.hex() + "0" * 16)[:16]
        if spread == "one second":
            seconds = 0x6b0554ff
        elif spread == "seconds apart":
            seconds = 0x6b0608c2 + int(digits[8:], 16) % (3 * len(lines) + 1)
        elif spread == "minutes apart":
            seconds = 0x6b05f000 + 400 * i + int(digits[8:], 16) % 2000
        else:
            seconds = int(digits[8:], 16)
        return b"@40000000%08x%s" % (seconds, digits[:8].encode())
    text = first.replace(b"\n", b"").lstrip(b"@") + b"\n" if first else b""
    text += b"".join(stamp(i, line) + b" " + line.replace(b"\n", b"") + b"\n"
                     for i, line in enumerate(lines))
    c = Converter()
    assert c.lines(text) == c.general(text)
    # and after the end of a line begun in an earlier buffer, "@" and all
    mid = first.replace(b"\n", b"") + b"\n"
    assert c.lines(mid + text, mid=True) == mid + c.general(text)


@pytest.mark.parametrize("short", [b"@", b"@4000000037c2", b"@4000000037c219bf2ef02e9 x",
                                   b"@4000000037c219bf2ef02e9\n@4000000037c219bf2ef02e94"])
def test_short_stamps_among_others(short: bytes) -> None:
    """Short stamps, first, last or between others of 24 digits, with fewer
    than 25 bytes after them or more: the fast path says what the general
    one says."""
    lines = [b"@4000000037c219bf2ef02e%02x line %d" % (i, i) for i in range(3)]
    for at in range(4):
        text = b"\n".join([*lines[:at], short, *lines[at:]]) + b"\n"
        for cut in (text, text[:-1]):
            c = Converter()
            assert c.lines(cut) == c.general(cut)


@pytest.mark.parametrize("first", [0x6fff0000, 0x6fffe000, 0x70000005])
def test_minutes_apart_where_the_low_28_bits_wrap(first: int) -> None:
    """Logs in time order are read by the low 28 bits of their labels, when
    the rest are the same in every stamp: before, across and just after
    the turn, with an hour begun before it."""
    text = b"".join(b"@40000000%08x%08x line %d\n" % (first + 60 * i, i, i) for i in range(200))
    c = Converter()
    assert c.lines(text) == c.general(text)


def test_an_endless_stamp_keeps_its_last_24_digits() -> None:
    c = Converter()
    out = c.feed(b"@" + b"f" * 100000)
    out += c.feed(b"f" * 100000 + b"4000000037c219bf2ef02e94 x\n")
    assert out == convert([b"@4000000037c219bf2ef02e94 x\n"])
    assert len(c.pending) == 0
    # and the reference agrees, reading it byte by byte
    got = compare("tai64nlocal", [], env=dict(ENV, TZ="UTC"),
                  stdin=b"@" + b"f" * 200000 + b"4000000037c219bf2ef02e94 x\n")
    assert got[1] == b"1999-08-24 04:04:05.787492500 x\n"


def test_exit_codes() -> None:
    # a read error (stdin closed) is 111 in silence; a closed output pipe is SIGPIPE
    assert compare("tai64nlocal", [], preexec=lambda: os.close(0)) == (111, b"", b"")
    for cmd in (ref("tai64nlocal"), ours("tai64nlocal")):
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run([cmd], input=b"x\n", stdout=w, stderr=subprocess.PIPE, timeout=30)
        os.close(w)
        assert p.returncode == -13, cmd


# moments where local time is irregular: daylight saving changes, a leap
# second (right/ zones), a half-hour change, a UTC offset of whole seconds
IRREGULAR = [
    ("America/New_York", 1710054000), ("America/New_York", 1730613600),
    ("right/UTC", 1483228800 + 26), ("right/Europe/Paris", 1435708800 + 25),
    ("Australia/Lord_Howe", 1712417400), ("Europe/Amsterdam", -1025745572),
    ("Asia/Kolkata", 1700000000), ("America/Sao_Paulo", -1767214412),
]


@contextmanager
def zone(tz: str) -> Iterator[None]:
    """$TZ for this process's localtime, for a while."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("tz,moment", IRREGULAR)
@pytest.mark.parametrize("step", [1, 3, 7, 61, 3607])
def test_seconds_apart_across_irregular_moments(tz: str, moment: int, step: int) -> None:
    """A quiet log, a stamp every few seconds, minutes or hours: ours makes
    dates by the day and the hour and must agree with localtime second by
    second."""
    if not Path(f"/usr/share/zoneinfo/{tz}").exists():
        pytest.skip(f"no zone {tz}")
    label = 4611686018427387914 + moment - 1500 * step
    data = b"".join(b"@%016x%08x line %d\n" % (label + i * step, i * 123457, i) for i in range(3000))
    agree(tz, data, 500)


def agree(tz: str, data: bytes, size: int) -> None:
    """data converted in tz as the reference converts it, and in process in
    buffers of size lines, smaller than a pipe gives, so that the fast paths
    take those beside a moment of change, not only one that holds it."""
    compare("tai64nlocal", [], env=dict(ENV, TZ=tz), stdin=data)
    lines = data.splitlines(keepends=True)
    c = Converter()
    with zone(tz):
        for a in range(0, len(lines), size):
            text = b"".join(lines[a:a + size])
            assert c.lines(text) == c.general(text)


def offset_changes(path: Path) -> list[int]:
    """When a TZif file's zone changes its UTC offset, from its 64-bit
    transitions (RFC 8536)."""
    data = path.read_bytes()
    if data[:4] != b"TZif" or data[4:5] < b"2":
        return []
    counts = struct.unpack(">6l", data[20:44])  # isut, isstd, leap, time, type, char
    at = 44 + counts[3] * 5 + counts[4] * 6 + counts[5] + counts[2] * 8 + counts[1] + counts[0]
    isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[at + 20:at + 44])
    at += 44
    moments = struct.unpack(">%dq" % times, data[at:at + 8 * times])
    kinds = data[at + 8 * times:at + 9 * times]
    at += 9 * times
    offsets = [struct.unpack(">l", data[at + 6 * i:at + 6 * i + 4])[0] for i in range(types)]
    changes, before = [], offsets[0]
    for moment, kind in zip(moments, kinds):
        if offsets[kind] != before:
            changes.append(moment)
        before = offsets[kind]
    return changes


def test_no_zone_changes_its_offset_twice_in_a_day() -> None:
    """What vouching for a day at a time (Hours) stands on, in every zone
    of this machine's tz data."""
    top = Path("/usr/share/zoneinfo")
    assert (top / "America/New_York").exists(), "no tz data: make test installs tzdata"
    least = min((b - a, str(path)) for path in top.rglob("*") if path.is_file()
                for changes in [offset_changes(path)] for a, b in zip(changes, changes[1:]))
    assert least[0] > 86400, least


@pytest.mark.parametrize("tz", ["XST0XDT,J100/6,J100/12", "XST0XDT,J100/6,J100/7"])
def test_summer_time_of_hours_that_tz_spells_out(tz: str) -> None:
    """A $TZ with rules of its own may keep summer time for less than a
    day: a line a minute across it, as the reference shows it."""
    label = 4611686018427387914 + 1712707200 - 86400  # the day before 2024-04-10
    data = b"".join(b"@%016x%08x line %d\n" % (label + 60 * i, i, i) for i in range(4000))
    agree(tz, data, 1000)


def test_the_hour_of_a_change_costs_a_few_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines a second apart through the half hour Lord Howe Island moves
    its clocks by: those of the very change get their dates one by one, and
    the buffer is not gone over again for each of them (it once was: 1,500
    passes over 3,000 lines)."""
    import dtd.log.tai64nlocal as module
    label = 4611686018427387914 + 1712417400 - 1500
    text = b"".join(b"@%016x%08x line %d\n" % (label + i, i, i) for i in range(3000))
    shifts = []
    real = module.shift_at
    monkeypatch.setattr(module, "shift_at", lambda label: shifts.append(label) or real(label))
    c = Converter()
    with zone("Australia/Lord_Howe"):
        assert c.lines(text) == c.general(text)
    assert 0 < len(shifts) <= 4
