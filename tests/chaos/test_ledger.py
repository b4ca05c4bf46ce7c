"""The account can see what it claims to: a lost line in the middle and at
the tail, a duplicate, one out of order, a torn line at the end of a .u file,
a line in the wrong log, across rotated files; and the writer records what
it wrote."""

import os
import signal
import subprocess
from pathlib import Path

from conftest import Procs, wait_for

from . import ledger
from .rig import PYTHON, WRITER

STAMP = "@400000006b05954613d9a84c"


def line(sid: str, inc: str, n: int) -> bytes:
    return f"{STAMP} {sid} {inc} {n} {'x' * 40}\n".encode()


def test_every_kind_of_fault_is_counted(tmp: Path) -> None:
    logs, led = tmp / "logs", tmp / "ledger"
    (logs / "a").mkdir(parents=True)
    (led / "a").mkdir(parents=True)
    (led / "a" / "1.1").write_bytes(b"%012d\n" % 10)
    (led / "a" / "2.2").write_bytes(b"%012d\n" % 3)
    # rotated first, then current: 4 lost, 6 twice, 8 before 7, 10 lost (11 came,
    # written and not yet recorded), and 3 of the second incarnation at its tail
    (logs / "a" / "@400000006b05950000000000.s").write_bytes(
        b"".join(line("a", "1.1", n) for n in (1, 2, 3, 5)))
    (logs / "a" / "@400000006b05960000000000.u").write_bytes(
        b"".join(line("a", "1.1", n) for n in (6, 6, 8)) + b"@4000")
    (logs / "a" / "current").write_bytes(
        b"".join(line("a", "1.1", n) for n in (7, 9, 11)) + line("b", "1.1", 1)
        + b"".join(line("a", "2.2", n) for n in (1, 2)))
    acc = ledger.account({"a": logs / "a"}, led)
    assert (acc.lost, acc.duplicated, acc.out_of_order, acc.malformed, acc.torn) == (3, 1, 1, 1, 1)
    assert acc.written == 13 and acc.incarnations == 2 and acc.unrecorded == 1
    assert [(g.inc, g.first, g.last, g.after is None) for g in acc.gaps] == [
        ("1.1", 4, 4, False), ("1.1", 10, 10, False), ("2.2", 3, 3, True)]


def test_the_writer_records_each_line_it_wrote(procs: Procs, tmp: Path) -> None:
    (tmp / "ledger" / "w").mkdir(parents=True)
    r, w = os.pipe()
    p = procs.start([PYTHON, "-IS", str(WRITER), "w", str(tmp / "ledger"), "0"],
                    stdout=w, cwd=tmp)
    os.close(w)
    data = b""
    while data.count(b"\n") < 500:
        data += os.read(r, 65536)
    p.send_signal(signal.SIGSTOP)
    wait_for(lambda: Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T")
    os.set_blocking(r, False)
    try:
        while chunk := os.read(r, 65536):
            data += chunk
    except BlockingIOError:
        pass
    [(inc, last)] = ledger.writer_last(tmp / "ledger", "w").items()
    numbers = [int(x.split()[2]) for x in data.splitlines()]
    assert numbers == list(range(1, len(numbers) + 1))
    # recorded after each whole write: the last one read, or the one before
    # when it was stopped between its write and its record
    assert last in (numbers[-1], numbers[-1] - 1)
    assert inc == data.split()[1].decode()
    # a second copy in the same directory cannot take the lock
    second = subprocess.run([PYTHON, "-IS", str(WRITER), "w", str(tmp / "ledger"), "0"],
                            cwd=tmp, capture_output=True, timeout=30)
    assert second.returncode == 1
    assert ledger.violations(tmp / "ledger")[0].startswith("w ")
    os.close(r)
