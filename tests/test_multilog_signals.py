"""multilog under signals, restarts, a full disk and a removed directory:
what the reference does, no line lost or duplicated (must-show items 3 and
4), and its memory while logging."""

import array
import fcntl
import os
import re
import shutil
import signal
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import Procs, fill_disk, have_ref, ours, ref, wait_for

pytestmark = pytest.mark.skipif(not have_ref("multilog"), reason="no reference multilog")

SIDES = [pytest.param(ref("multilog"), id="reference"), pytest.param(ours("multilog"), id="ours")]
STAMPED = re.compile(rb"^@[0-9a-f]{24} ", re.M)


def settled(pid: int, sig: int = signal.SIGTERM) -> bool:
    """The process took the signal and sleeps again (in its next read)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return fields["State"].split()[0] == "S" and not pending & 1 << (sig - 1)


def unread(fd: int) -> int:
    """Bytes waiting in the pipe fd is an end of."""
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]


def log_text(d: Path, harvested: Path | None = None) -> bytes:
    """Old files (and the harvested links of any removed since) in order,
    then current."""
    names = {p.name: p for p in d.glob("@*")}
    if harvested:
        names.update({p.name: p for p in harvested.glob("@*")})
    return b"".join(names[n].read_bytes() for n in sorted(names)) + (d / "current").read_bytes()


def numbered(n: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(1, n + 1))


@pytest.mark.parametrize("prog", SIDES)
def test_term_finishes_the_line_and_leaves_the_rest(tmp: Path, procs: Procs, prog: str) -> None:
    r, w = os.pipe()
    try:
        p = procs.start([prog, "./log"], stdin=r, cwd=tmp)
        os.write(w, b"one\ntwo")
        current = tmp / "log" / "current"
        wait_for(lambda: current.exists() and current.read_bytes() == b"one\n", what="first line")
        p.send_signal(signal.SIGTERM)
        wait_for(lambda: settled(p.pid), what="TERM taken")
        os.write(w, b" more\nthree\nfour\n")
        assert p.wait(timeout=10) == 0
        assert current.read_bytes() == b"one\ntwo more\n"
        assert current.stat().st_mode & 0o777 == 0o744
        assert os.read(r, 100) == b"three\nfour\n"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("prog", SIDES)
def test_alrm_rotates_now_and_only_a_nonempty_current(tmp: Path, procs: Procs, prog: str) -> None:
    r, w = os.pipe()
    try:
        p = procs.start([prog, "t", "./log"], stdin=r, cwd=tmp)
        os.close(r)
        d = tmp / "log"
        os.write(w, b"a\nb\n")
        wait_for(lambda: (d / "current").exists() and (d / "current").stat().st_size == 56)
        p.send_signal(signal.SIGALRM)
        wait_for(lambda: list(d.glob("@*.s")), what="rotated file")
        [old] = d.glob("@*.s")
        assert STAMPED.sub(b"", old.read_bytes()) == b"a\nb\n"
        assert old.stat().st_mode & 0o777 == 0o744
        p.send_signal(signal.SIGALRM)  # current is empty: nothing to rotate
        wait_for(lambda: settled(p.pid, signal.SIGALRM), what="ALRM taken")
        os.write(w, b"c\n")
        wait_for(lambda: (d / "current").stat().st_size == 28)
        assert len(list(d.glob("@*"))) == 1
    finally:
        os.close(w)
    assert p.wait(timeout=10) == 0


@pytest.mark.slow
@pytest.mark.parametrize("prog", SIDES)
def test_million_lines_under_alrm_storm(tmp: Path, procs: Procs, prog: str) -> None:
    """The test writes the lines in 200 pieces with an ALRM after each and a
    few ms between; old files are linked aside as they appear (n20 would
    remove them), and together they hold every line once."""
    count, pieces = 1_000_000, 200
    r, w = os.pipe()
    p = procs.start([prog, "t", "s16777215", "n20", "./log"], stdin=r, cwd=tmp)
    os.close(r)
    d, harvested = tmp / "log", tmp / "harvest"
    harvested.mkdir()
    # ALRM kills a multilog that has not yet set itself up, reference or ours
    wait_for(lambda: (d / "current").exists(), what="log set up")

    def harvest() -> None:
        for old in d.glob("@*"):
            if not (harvested / old.name).exists():
                os.link(old, harvested / old.name)

    try:
        step = count // pieces
        for k in range(pieces):
            piece = b"".join(b"%d\n" % i for i in range(k * step + 1, (k + 1) * step + 1))
            while piece:
                piece = piece[os.write(w, piece):]
            p.send_signal(signal.SIGALRM)
            harvest()
            time.sleep(0.002)  # the pace of the storm, not a wait for a condition
    finally:
        os.close(w)
    assert p.wait(timeout=30) == 0
    harvest()
    assert len(list(harvested.glob("@*.s"))) > 20
    assert STAMPED.sub(b"", log_text(d, harvested)) == numbered(count)


@pytest.mark.slow
@pytest.mark.parametrize("prog", SIDES)
def test_million_lines_through_term_and_restart(tmp: Path, procs: Procs, prog: str) -> None:
    """The pipe is held open by the test, as the root holds it, while
    multilog is stopped with TERM and started again, over and over."""
    count = 1_000_000
    r, w = os.pipe()
    seq = procs.start(["seq", str(count)], stdout=w)
    os.close(w)
    args = [prog, "t", "s16777215", "n20", "./log"]
    current = tmp / "log" / "current"
    restarts = 0
    try:
        while seq.poll() is None and restarts < 40:
            before = current.stat().st_size if current.exists() else 0
            p = procs.start(args, stdin=r, cwd=tmp)
            wait_for(lambda: p.poll() is not None or seq.poll() is not None
                     or (current.exists() and current.stat().st_size != before),
                     what="some lines logged")
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=20) == 0
            restarts += 1
        # the writer is done: the last one reads to the end
        last = procs.start(args, stdin=r, cwd=tmp)
        os.close(r)
        r = -1
        assert last.wait(timeout=60) == 0
    finally:
        if r >= 0:
            os.close(r)
    assert seq.wait(timeout=10) == 0
    assert restarts >= 3
    assert STAMPED.sub(b"", log_text(tmp / "log")) == numbered(count)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_pauses_and_loses_nothing(tmp: Path, procs: Procs) -> None:
    """Both on their own 256 KiB tmpfs: the same warning, then every line
    once the file system grows."""
    count = 60_000  # 400 KB of numbered lines
    runs = []
    mounts = []
    try:
        for side, prog in (("ref", ref("multilog")), ("ours", ours("multilog"))):
            mnt = tmp / side
            mnt.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                           check=True)
            mounts.append(mnt)
            err = (tmp / f"{side}.err").open("wb")
            seq = procs.start(["seq", str(count)], stdout=subprocess.PIPE)
            assert seq.stdout is not None
            p = procs.start([prog, "./log"], stdin=seq.stdout, stderr=err, cwd=mnt)
            seq.stdout.close()
            seq.stdout = None
            err.close()
            runs.append((mnt, p, tmp / f"{side}.err"))
        warning = b"multilog: warning: unable to write to ./log/current, pausing: out of disk space\n"
        for mnt, p, err in runs:
            wait_for(lambda: err.read_bytes().startswith(warning), timeout=20, what="a warning")
            assert p.poll() is None
            subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
        for mnt, p, err in runs:
            assert p.wait(timeout=30) == 0
            assert set(err.read_bytes().splitlines(keepends=True)) == {warning}
            assert log_text(mnt / "log") == numbered(count)
    finally:
        for p in procs.started:
            if p.poll() is None:
                p.kill()
                p.wait()
        for mnt in mounts:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_killed_while_paused_leaves_its_lines_in_the_pipe(tmp: Path, procs: Procs) -> None:
    """SIGKILLed while a full disk holds its lines back, ours has taken
    none of them out of the pipe (it peeks, and takes what it has written):
    the next multilog writes every line, once. The reference loses what it
    had read."""
    mnt = tmp / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    r, w = os.pipe()
    try:
        err = mnt.parent / "err"
        with open(err, "wb") as e:
            first = procs.start([ours("multilog"), "t", "./log"], stdin=r, stderr=e, cwd=mnt)
        wait_for(lambda: (mnt / "log" / "current").exists(), what="multilog set up")
        filler = fill_disk(mnt)
        os.write(w, numbered(3000))
        wait_for(lambda: b"pausing" in err.read_bytes(), what="multilog pausing")
        assert unread(r) == len(numbered(3000))
        first.kill()
        first.wait()
        os.unlink(filler)
        os.close(w)
        w = -1
        with open(err, "ab") as e:
            again = procs.start([ours("multilog"), "t", "./log"], stdin=r, stderr=e, cwd=mnt)
        assert again.wait(timeout=30) == 0
        assert STAMPED.sub(b"", log_text(mnt / "log")) == numbered(3000)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("unfinished", [False, True], ids=["fresh", "unfinished-current"])
def test_crashed_processor_warning_like_reference(tmp: Path, procs: Procs, unfinished: bool) -> None:
    """The reference prints errno after a crash although nothing failed just
    then: what its start-up left there (readdir's end clears it)."""
    lines = []
    for side, prog in (("ref", ref("multilog")), ("ours", ours("multilog"))):
        work = tmp / side
        (work / "log").mkdir(parents=True)
        if unfinished:
            (work / "log" / "current").write_bytes(b"old\n")
        inp = tmp / "input"
        inp.write_bytes(b"x" * 5000 + b"\n")
        err = tmp / f"{side}.err"
        with inp.open("rb") as f, err.open("wb") as e:
            p = procs.start([prog, "s4096", "!kill -9 $$", "./log"], stdin=f, stderr=e, cwd=work)
        wait_for(lambda: err.read_bytes().endswith(b"\n"), what="the warning")
        p.kill()
        p.wait()
        lines.append(err.read_bytes().splitlines()[0])
    assert lines[0].startswith(b"multilog: warning: processor crashed in ./log, pausing: ")
    assert lines[1] == lines[0]


def test_removed_directory_warns_like_reference(tmp: Path, procs: Procs) -> None:
    """Lines still go to the open current; the rotation ALRM asks for cannot
    rename it and says so, again every 5 seconds, as the reference does."""
    lines = []
    for side, prog in (("ref", ref("multilog")), ("ours", ours("multilog"))):
        work = tmp / side
        work.mkdir()
        r, w = os.pipe()
        err = tmp / f"{side}.err"
        with err.open("wb") as e:
            p = procs.start([prog, "./log"], stdin=r, stderr=e, cwd=work)
        os.close(r)
        try:
            os.write(w, b"before\n")
            current = work / "log" / "current"
            wait_for(lambda: current.exists() and current.stat().st_size == 7, what="a line")
            shutil.rmtree(work / "log")
            os.write(w, b"after\n")
            p.send_signal(signal.SIGALRM)
            wait_for(lambda: err.read_bytes().endswith(b"\n"), what="the warning")
            assert p.poll() is None
        finally:
            os.close(w)
        p.kill()
        p.wait()
        lines.append(err.read_bytes().splitlines()[0])
    assert lines[0] == (b"multilog: warning: unable to rename current to previous in directory"
                        b" ./log, pausing: file does not exist")
    assert lines[1] == lines[0]


@pytest.mark.parametrize("script", [["t", "s16777215", "n10"], ["t", "-*", "+* *5*", "e"]],
                         ids=["whole-reads", "per-line"])
def test_memory_stays_small_while_logging(tmp: Path, procs: Procs, script: list[str]) -> None:
    """Peak RSS after 40 MB through a pipe, read while multilog still runs."""
    r, w = os.pipe()
    p = procs.start([ours("multilog"), *script, "./log"], stdin=r, cwd=tmp,
                    stderr=subprocess.DEVNULL)
    os.close(r)
    line = b"%09d " + b"x" * 90 + b"\n"
    block = b"".join(line % i for i in range(10000))  # 1 MB
    try:
        for _ in range(40):
            view = memoryview(block)
            while view:
                view = view[os.write(w, view):]
        wait_for(lambda: unread(w) == 0 and settled(p.pid), what="input taken")
        status = Path(f"/proc/{p.pid}/status").read_text()
        hwm_kib = int(status.split("VmHWM:")[1].split()[0])
        assert hwm_kib < 20 * 1024
    finally:
        os.close(w)
    assert p.wait(timeout=30) == 0
