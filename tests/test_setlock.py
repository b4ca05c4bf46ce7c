"""setlock against Debian's /usr/bin/setlock: the lock is a real flock that
the child holds, the file is created 0600 and never truncated or removed,
-n gives up, -N waits, -x is silent; getopt and error messages."""

import fcntl
import os
import stat
from pathlib import Path

import pytest

from clienttools import can_lose_dac, without_dac
from conftest import Procs, have_ref, ours, ref, wait_for
from tooltools import compare

pytestmark = pytest.mark.skipif(not have_ref("setlock"), reason="daemontools not installed")


def locked(path: Path) -> bool:
    """Whether someone holds an flock on path (we try to take it and let go)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def waiting(path: Path) -> bool:
    tag = f":{path.stat().st_ino} "
    with open("/proc/locks") as f:
        return any(" -> " in line and tag in line for line in f)


@pytest.mark.parametrize("args", [
    [], ["-q"], ["lk"], ["-n"], ["-n", "lk"], ["-nxNX", "lk"], ["--", "lk"], ["-", "true"],
    ["-n", "--", "lk", "true"], ["--n", "lk", "true"], ["lk", "nosuchprogram"],
    ["-x", "lk", "nosuchprogram"], ["/nonexistent/lk", "true"], ["-x", "/nonexistent/lk", "true"],
    ["-X", "-x", "/nonexistent/lk", "true"], ["-x", "-X", "/nonexistent/lk", "true"],
    ["lk", "sh", "-c", "exit 3"], ["."], [".", "true"], ["-x", ".", "true"],
])
def test_arguments_and_errors(tmp: Path, args: list[str]) -> None:
    compare("setlock", args, cwd=tmp)


@pytest.mark.parametrize("cmd", ["ref", "ours"])
def test_file_created_kept_and_not_truncated(tmp: Path, cmd: str) -> None:
    prog = ref("setlock") if cmd == "ref" else ours("setlock")
    new, old = tmp / "new", tmp / "old"
    old.write_bytes(b"keep me\n")
    for path in (new, old):
        assert os.spawnv(os.P_WAIT, prog, [prog, str(path), "true"]) == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o600 and new.read_bytes() == b""
    assert old.read_bytes() == b"keep me\n"


def test_the_child_holds_the_lock(tmp: Path, procs: Procs) -> None:
    for prog in (ref("setlock"), ours("setlock")):
        lk = tmp / os.path.basename(os.path.dirname(prog))
        r, w = os.pipe()
        # the child waits for a line on stdin, holding the lock meanwhile
        p = procs.start([prog, str(lk), "sh", "-c", "read x"], stdin=r)
        os.close(r)
        wait_for(lambda: locked(lk), what=f"{prog} to lock")
        # -n gives up at once, with the reference's message
        held = compare("setlock", ["-n", lk, "true"], cwd=tmp)
        assert held == (111, b"", f"setlock: fatal: unable to lock {lk}: temporary failure\n".encode())
        assert compare("setlock", ["-nx", lk, "true"], cwd=tmp) == (0, b"", b"")
        os.write(w, b"\n")
        os.close(w)
        assert p.wait(timeout=10) == 0
        assert not locked(lk)


def test_without_n_it_waits(tmp: Path, procs: Procs) -> None:
    lk = tmp / "lk"
    out = tmp / "out"
    r, w = os.pipe()
    first = procs.start([ref("setlock"), str(lk), "sh", "-c", "read x"], stdin=r)
    os.close(r)
    wait_for(lambda: locked(lk), what="the first setlock to lock")
    second = procs.start([ours("setlock"), "-N", str(lk), "sh", "-c", f"echo got >{out}"])
    # the second is blocked in flock, not done: /proc/locks lists waiters
    wait_for(lambda: waiting(lk), what="the second setlock to block")
    assert not out.exists() and second.poll() is None
    os.write(w, b"\n")
    os.close(w)
    assert first.wait(timeout=10) == 0
    assert second.wait(timeout=10) == 0
    assert out.read_bytes() == b"got\n"


def test_the_lock_is_an_flock(tmp: Path, procs: Procs) -> None:
    """The lock kind shows in /proc/locks: FLOCK for both (not POSIX)."""
    kinds: list[list[list[str]]] = []
    for prog in (ref("setlock"), ours("setlock")):
        lk = tmp / ("lk" + str(len(kinds)))
        r, w = os.pipe()
        p = procs.start([prog, str(lk), "sh", "-c", "read x"], stdin=r)
        os.close(r)
        wait_for(lambda: locked(lk))
        ino = lk.stat().st_ino
        with open("/proc/locks") as f:
            kinds.append([line.split()[1:4] for line in f if f":{ino} " in line])
        os.write(w, b"\n")
        os.close(w)
        p.wait(timeout=10)
    assert kinds[0] == kinds[1] == [["FLOCK", "ADVISORY", "WRITE"]]


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
@pytest.mark.parametrize("args", [["lk", "true"], ["-x", "lk", "true"], ["sub/lk", "true"]])
def test_access_denied(tmp: Path, args: list[str]) -> None:
    (tmp / "lk").write_bytes(b"")
    (tmp / "lk").chmod(0o400)
    (tmp / "sub").mkdir(mode=0o500)
    compare("setlock", args, wrap=without_dac([]), cwd=tmp)
