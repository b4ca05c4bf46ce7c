"""fghack against Debian's /usr/bin/fghack: the child's extra descriptors,
waiting for a backgrounded daemon to close them, exit codes, usage and errors."""

import os
import signal
from pathlib import Path

import pytest

from conftest import Procs, have_ref, ours, pid_alive, ref, wait_for
from tooltools import compare

pytestmark = pytest.mark.skipif(not have_ref("fghack"), reason="daemontools not installed")


@pytest.mark.parametrize("args", [
    [], ["nosuchprogram"], ["sh", "-c", "exit 3"], ["sh", "-c", "echo out; echo err >&2"],
    ["sh", "-c", "kill $$"], ["sh", "-c", "echo data >&5; exit 0"], ["./"],
])
def test_arguments_and_errors(tmp: Path, args: list[str]) -> None:
    compare("fghack", args, cwd=tmp)


def test_crashed_child() -> None:
    got = compare("fghack", ["sh", "-c", "kill -9 $$"])
    assert got == (111, b"", b"fghack: fatal: child crashed\n")


def test_descriptors_of_the_child() -> None:
    # the write end and 30 dups of it, all on one pipe, fds 3 to 33, then
    # the listing's own descriptor
    got = compare("fghack", ["ls", "-1", "/proc/self/fd"])
    assert sorted(map(int, got[1].split())) == list(range(35))


@pytest.mark.parametrize("which", ["ref", "ours"])
def test_waits_for_the_background(tmp: Path, procs: Procs, which: str) -> None:
    prog = ref("fghack") if which == "ref" else ours("fghack")
    pidfile = tmp / "bg"
    # the child backgrounds a sleeper that keeps the descriptors, and exits 6
    p = procs.start([prog, "sh", "-c", f"sleep 300 & echo $! > {pidfile}; exit 6"])
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the sleeper")
    bg = int(pidfile.read_text())
    # the child is gone (a zombie, not yet reaped), fghack keeps reading
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        child = int(f.read().split()[0])
    wait_for(lambda: not pid_alive(child), what="the child to exit")
    assert p.poll() is None
    os.kill(bg, signal.SIGKILL)
    assert p.wait(timeout=10) == 6
