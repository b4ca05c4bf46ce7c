"""The account of every line: what the writers recorded against what the
log directories hold.

A writer (tests/chaos/writer.py) records, after each write into its pipe that
returned whole, the sequence number it wrote, per incarnation. The logs are
read in the order multilog made them (the rotated ``@*.s``/``@*.u`` files by
their TAI64N names, then ``previous``, ``processed``, ``current``). Each line
of each incarnation 1..recorded that is not there is lost; one that is there
twice is duplicated; one that comes after a higher number of its incarnation
is out of order. A line that is not a writer's line, or that sits in another
service's log, is malformed; but the partial last line of a ``.u`` file (the
current file of a multilog that was killed, which multilog(8) says may end
with one) is torn, counted apart. Lines past the recorded number are fine: the
writer was killed between its write and its record.

Each run of lost lines is a gap, with the multilog stamps of the lines on
either side, so that it can be laid next to the faults of that moment.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dtd import tai64

LINE = re.compile(rb"^(@[0-9a-f]{24}) (\S+) (\d+\.\d+) (\d+) x{40}$")
TAIL_FILES = ("previous", "processed", "current")


@dataclass
class Gap:
    sid: str
    inc: str
    first: int  # first lost sequence number
    last: int
    before: float | None  # stamp of the line before the gap, Unix time
    after: float | None  # stamp of the line after it; None at the tail
    recorded: float = 0.0  # when the incarnation last recorded a line (its ledger file)


@dataclass
class Account:
    written: int = 0  # lines the writers recorded as written
    seen: int = 0  # writer lines found in the logs
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    malformed: int = 0
    torn: int = 0  # the partial last line of a .u file: multilog(8) says it may have one
    unrecorded: int = 0  # found, written after the last record of a killed writer
    incarnations: int = 0
    gaps: list[Gap] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)  # a few malformed lines, for the report


def log_files(directory: Path) -> list[Path]:
    """The files of one multilog directory, oldest first."""
    if not directory.is_dir():
        return []
    old = sorted(p for p in directory.iterdir()
                 if p.name.startswith("@") and p.name[-2:] in (".s", ".u"))
    return old + [directory / n for n in TAIL_FILES if (directory / n).is_file()]


def stamp_time(text: bytes) -> float:
    label = tai64.from_hex(text.decode())
    assert label is not None
    s, ns = tai64.unpack(label)
    return s + ns / 1e9


def read_ledger(ledger: Path) -> dict[tuple[str, str], int]:
    """(service, incarnation) -> the last sequence number recorded."""
    out: dict[tuple[str, str], int] = {}
    for sdir in sorted(p for p in ledger.iterdir() if p.is_dir()):
        for rec in sdir.iterdir():
            text = rec.read_bytes().strip()
            out[(sdir.name, rec.name)] = int(text) if text else 0
    return out


def recorded_at(ledger: Path, sid: str, inc: str) -> float:
    try:
        return (ledger / sid / inc).stat().st_mtime
    except OSError:
        return 0.0


def violations(ledger: Path) -> list[str]:
    path = ledger / "violations"
    return path.read_text().splitlines() if path.exists() else []


class _Seen:
    __slots__ = ("count", "stamp", "top")

    def __init__(self) -> None:
        self.count: dict[int, int] = {}
        self.stamp: dict[int, float] = {}
        self.top = 0


def account(logs: dict[str, Path], ledger: Path) -> Account:
    """logs: service id -> its multilog directory."""
    acc = Account()
    recorded = read_ledger(ledger)
    seen: dict[tuple[str, str], _Seen] = {}
    for sid, directory in sorted(logs.items()):
        for f in log_files(directory):
            data = f.read_bytes()
            lines = data.split(b"\n")
            tail = lines.pop()  # after the last newline: empty, or a partial line
            if tail and f.name.endswith(".u"):
                acc.torn += 1
            elif tail:
                lines.append(tail)
            for raw in lines:
                m = LINE.match(raw)
                if m is None or m.group(2).decode() != sid or \
                        (sid, m.group(3).decode()) not in recorded:
                    acc.malformed += 1
                    if len(acc.samples) < 5:
                        acc.samples.append(f"{f}: {raw[:120]!r}")
                    continue
                key = (sid, m.group(3).decode())
                n = int(m.group(4))
                s = seen.setdefault(key, _Seen())
                acc.seen += 1
                if n in s.count:
                    acc.duplicated += 1
                    s.count[n] += 1
                    continue
                if n < s.top:
                    acc.out_of_order += 1
                s.count[n] = 1
                s.stamp[n] = stamp_time(m.group(1))
                s.top = max(s.top, n)
    for (sid, inc), last in sorted(recorded.items()):
        if sid not in logs:
            continue
        acc.incarnations += 1
        acc.written += last
        s = seen.get((sid, inc), _Seen())
        acc.unrecorded += sum(1 for n in s.count if n > last)
        n = 1
        while n <= last:
            if n in s.count:
                n += 1
                continue
            first = n
            while n <= last and n not in s.count:
                n += 1
            acc.lost += n - first
            acc.gaps.append(Gap(sid, inc, first, n - 1, s.stamp.get(first - 1),
                                s.stamp.get(n), recorded_at(ledger, sid, inc)))
    return acc


def writer_last(ledger: Path, sid: str) -> dict[str, int]:
    """The incarnations of one service and their last recorded numbers."""
    d = ledger / sid
    if not d.is_dir():
        return {}
    out = {}
    for rec in d.iterdir():
        try:
            text = rec.read_bytes().strip()
        except OSError:
            continue
        out[rec.name] = int(text) if text else 0
    return out


def newest_incarnation(ledger: Path, sid: str) -> str | None:
    d = ledger / sid
    try:
        recs = list(os.scandir(d))
    except OSError:
        return None
    if not recs:
        return None
    return max(recs, key=lambda e: e.stat().st_mtime_ns).name
