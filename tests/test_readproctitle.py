"""readproctitle against Debian's /usr/bin/readproctitle: what
/proc/PID/cmdline and ps show as input arrives, usage, exit codes."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import Procs, have_ref, ours, ref, wait_for
from dtd.log import readproctitle
from tooltools import compare

pytestmark = pytest.mark.skipif(not have_ref("readproctitle"), reason="daemontools not installed")


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def after_argv0(pid: int) -> bytes:
    return cmdline(pid).partition(b"\0")[2]


@pytest.mark.parametrize("args", [
    [], ["...."], ["a", "...."], ["a", "b", ""], ["....."], ["a", "....."], ["a", "abcde"],
])
def test_arguments(args: list[str]) -> None:
    # the reference is silent even on usage errors: exit 100, nothing said
    got = compare("readproctitle", args, stdin=b"data\n")
    assert got[1:] == (b"", b"")


def test_read_error_and_end_of_input() -> None:
    assert compare("readproctitle", ["x", "....."], preexec=lambda: os.close(0))[0] == 111
    assert compare("readproctitle", ["x", "....."], stdin=b"")[0] == 0


def test_the_command_line_shows_the_input(procs: Procs) -> None:
    args = ["io", "errors:", "abcdefghijklmnopqrst"]
    started = {}
    for prog in (ref("readproctitle"), ours("readproctitle")):
        started[prog] = procs.start([prog, *args], stdin=subprocess.PIPE)
    steps = [b"", b"xy", b"fatal error xyz\nwarning abc\n", b"\0\0", b"0123456789" * 5]
    history = b"." * 20  # filled with dots at once
    for data in steps:
        history += data.replace(b"\0", b"")  # NULs are dropped
        # three dots stay, the latest bytes fill the rest
        shown = b"..." + history[-17:]
        want = b"io\0errors:\0" + shown + b"\0"
        for prog, p in started.items():
            assert p.stdin
            p.stdin.write(data)
            p.stdin.flush()
            wait_for(lambda: after_argv0(p.pid) == want, what=f"{prog} to show {shown!r}")
    # all of it, argv[0] included: the interpreter is not shown
    p = started[ours("readproctitle")]
    assert cmdline(p.pid) == ours("readproctitle").encode() + b"\0" + want
    with open(f"/proc/{p.pid}/comm", "rb") as f:
        assert f.read() == b"readproctitle\n"
    for p in started.values():
        assert p.stdin
        p.stdin.close()
        assert p.wait(timeout=10) == 0


def test_ps_shows_the_same(procs: Procs) -> None:
    shown = []
    for prog in (ref("readproctitle"), ours("readproctitle")):
        p = procs.start([prog, "service", "errors:", "." * 40], stdin=subprocess.PIPE)
        assert p.stdin
        p.stdin.write(b"svscan: warning: unable to start x\n")
        p.stdin.flush()
        wait_for(lambda: after_argv0(p.pid).endswith(b"x\n\0"))
        out = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(p.pid)], capture_output=True,
                             timeout=30).stdout
        shown.append(out.partition(b" ")[2])
    assert shown[0] == shown[1]
    assert shown[0].startswith(b"service errors: .....svscan: warning: unable to start x")


def test_without_the_real_command_line() -> None:
    # called as a function, there is no argv area to write: it still reads
    r, w = os.pipe()
    os.write(w, b"data")
    os.close(w)
    saved = os.dup(0)
    os.dup2(r, 0)
    try:
        assert readproctitle.main(["x", "....."]) == 0
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r)


def test_pid_stat_fields(tmp: Path) -> None:
    start, end = readproctitle.argv_area()
    assert 0 < start < end
