"""svstat: our output against Debian's /usr/bin/svstat, byte for byte.

Most states are crafted: a status file written by the test and a
supervise/ok FIFO that the test holds open for reading, so that svstat
believes a supervise runs. That gives exact control over pid, paused, want
and the timestamp. The rest are driven by the reference supervise.

The seconds field is compared exactly too: the reference runs before and
after ours, and ours must equal one of the two runs (a second can tick
between them).
"""

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from clienttools import Result, can_lose_dac, run, without_dac

pytestmark = pytest.mark.skipif(not have_ref("svstat"), reason="daemontools not installed")

TAI_BASE = 2**62 + 10


def label(unix: int, nano: int = 0) -> bytes:
    return (TAI_BASE + unix).to_bytes(8, "big") + nano.to_bytes(4, "big")


def record(ago: int = 5, pid: int = 0, paused: int = 0, want: bytes = b"u",
           runit: bytes | None = None) -> bytes:
    data = label(int(time.time()) - ago) + pid.to_bytes(4, "little") + bytes([paused]) + want
    return data + (runit or b"")


def compare(cwd: Path, *args: str | bytes | Path) -> Result:
    """Run the reference, ours, and the reference again; ours must equal a
    reference run in exit code, stdout and stderr."""
    first = run([ref("svstat"), *args], cwd)
    got = run([ours("svstat"), *args], cwd)
    if got == first:
        return got
    second = run([ref("svstat"), *args], cwd)
    assert got == second, f"svstat {args!r} differs\nreference: {second}\nours:      {got}"
    return got


@pytest.fixture
def crafted(tmp: Path) -> Iterator[Callable[..., Path]]:
    """make(name, status=bytes|None, down=False, ok=True): a service directory
    whose supervise/ok has a reader (this process) when ok is true."""
    held: list[int] = []

    def make(name: str | bytes = "svc", status: bytes | None = None, down: bool = False,
             ok: bool = True) -> Path:
        d = tmp / os.fsdecode(name)
        (d / "supervise").mkdir(parents=True)
        os.mkfifo(d / "supervise" / "ok", 0o600)
        os.mkfifo(d / "supervise" / "control", 0o600)
        if ok:
            held.append(os.open(d / "supervise" / "ok", os.O_RDONLY | os.O_NONBLOCK))
        if status is not None:
            (d / "supervise" / "status").write_bytes(status)
        if down:
            (d / "down").touch()
        return d

    yield make
    for fd in held:
        os.close(fd)


STATES: dict[str, dict[str, Any]] = {
    "up": dict(status=record(pid=1234)),
    "up-normally-down": dict(status=record(pid=1234), down=True),
    "down-normally-up-want-up": dict(status=record(pid=0, want=b"u")),
    "down-want-down": dict(status=record(pid=0, want=b"d")),
    "down-normally-down": dict(status=record(pid=0, want=b"d"), down=True),
    "down-normally-down-want-up": dict(status=record(pid=0, want=b"u"), down=True),
    "up-paused": dict(status=record(pid=99, paused=1)),
    "up-paused-byte-2": dict(status=record(pid=99, paused=2)),
    "down-paused-not-shown": dict(status=record(pid=0, paused=1)),
    "up-want-down": dict(status=record(pid=99, want=b"d")),
    "up-paused-want-down-normally-down": dict(status=record(pid=7, paused=1, want=b"d"), down=True),
    "up-run-once": dict(status=record(pid=99, want=b"\0")),
    "down-run-once": dict(status=record(pid=0, want=b"\0")),
    "up-want-other-byte": dict(status=record(pid=99, want=b"x")),
    "pid-max": dict(status=record(pid=0xFFFFFFFF)),
    "just-now": dict(status=record(ago=0, pid=5)),
    "long-ago": dict(status=record(ago=10**8, pid=5)),
    "future-clamped-to-0": dict(status=record(ago=-3600, pid=5)),
    "label-zero": dict(status=bytes(12) + bytes(6)),
    "label-all-ones": dict(status=b"\xff" * 12 + bytes(6)),
    "runit-20-bytes-run": dict(status=record(pid=42, runit=b"\0\1")),
    "runit-20-bytes-finish": dict(status=record(pid=0, runit=b"\0\2")),
    "runit-20-bytes-got-term": dict(status=record(pid=42, want=b"d", runit=b"\1\1")),
    "19-bytes": dict(status=record(pid=42, runit=b"\0")),
    "30-bytes": dict(status=record(pid=42) + bytes(12)),
    "17-bytes": dict(status=record(pid=42)[:17]),
    "0-bytes": dict(status=b""),
    "status-missing": dict(status=None),
    "not-running": dict(status=record(pid=42), ok=False),
    "not-running-no-status": dict(status=None, ok=False),
}


@pytest.mark.parametrize("state", list(STATES))
def test_crafted_state(crafted: Callable[..., Path], tmp: Path, state: str) -> None:
    crafted("svc", **STATES[state])
    compare(tmp, "svc")


def test_seconds_are_whole_seconds_since_the_label(crafted: Callable[..., Path], tmp: Path) -> None:
    crafted("svc", status=record(ago=100, pid=5))
    _, out, _ = compare(tmp, "svc")
    assert out in (b"svc: up (pid 5) 100 seconds\n", b"svc: up (pid 5) 101 seconds\n")


def test_all_states_in_one_call(crafted: Callable[..., Path], tmp: Path) -> None:
    names = []
    for i, state in enumerate(STATES):
        crafted(f"s{i}", **STATES[state])
        names.append(f"s{i}")
    # more than the reference's 1024-byte output buffer, so it flushes midway
    compare(tmp, *names, *names)


def test_no_arguments(tmp: Path) -> None:
    assert compare(tmp) == (0, b"", b"")


def test_options_are_directories(tmp: Path) -> None:
    compare(tmp, "-u", "--", "-")


def test_paths_that_are_not_services(tmp: Path) -> None:
    (tmp / "file").touch()
    (tmp / "empty").mkdir()
    (tmp / "supfile" / "supervise").mkdir(parents=True)
    (tmp / "supfile" / "supervise").rmdir()
    (tmp / "supfile" / "supervise").touch()
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    (tmp / "loop").symlink_to("loop")
    compare(tmp, "nonexistent", "file", "empty", "supfile", "dangling", "loop", "", "/", ".")


def test_odd_files_in_supervise(crafted: Callable[..., Path], tmp: Path) -> None:
    d = crafted("status-is-dir", status=None)
    (d / "supervise" / "status").mkdir()
    d = crafted("ok-is-dir", status=record(pid=3), ok=False)
    (d / "supervise" / "ok").unlink()
    (d / "supervise" / "ok").mkdir()
    d = crafted("ok-is-file", status=record(pid=3), ok=False)
    (d / "supervise" / "ok").unlink()
    (d / "supervise" / "ok").touch()
    d = crafted("ok-missing", status=record(pid=3), ok=False)
    (d / "supervise" / "ok").unlink()
    d = crafted("down-loop", status=record(pid=3))
    (d / "down").symlink_to("down")
    d = crafted("down-dangling", status=record(pid=3))
    (d / "down").symlink_to("nowhere")
    d = crafted("down-is-dir", status=record(pid=3))
    (d / "down").mkdir()
    compare(tmp, "status-is-dir", "ok-is-dir", "ok-is-file", "ok-missing", "down-loop",
            "down-dangling", "down-is-dir")


def test_failed_read_shows_the_previous_record(crafted: Callable[..., Path], tmp: Path) -> None:
    # the reference's buffer_unixread returns -1, compared as unsigned with
    # 18 it passes, and the static buffer is printed as it is
    d = crafted("dir", status=None)
    (d / "supervise" / "status").mkdir()
    crafted("full", status=record(ago=7, pid=777, want=b"d"))
    crafted("short", status=(label(int(time.time()) - 9) + (555).to_bytes(4, "little"))[:14])
    compare(tmp, "dir", "full", "dir", "short", "dir", "missing", "dir")


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
def test_access_denied(crafted: Callable[..., Path], tmp: Path) -> None:
    (tmp / "closed").mkdir(mode=0)
    d = crafted("supclosed", status=record(pid=4))
    (d / "supervise").chmod(0)
    d = crafted("okclosed", status=record(pid=4))
    (d / "supervise" / "ok").chmod(0)
    d = crafted("statusclosed", status=record(pid=4))
    (d / "supervise" / "status").chmod(0)
    names = ["closed", "supclosed", "okclosed", "statusclosed"]
    want = run(without_dac([ref("svstat"), *names]), tmp)
    got = run(without_dac([ours("svstat"), *names]), tmp)
    assert got == want
    assert got[1].count(b"access denied") == 4
    (tmp / "xonly").mkdir(mode=0o100)
    want = run(without_dac([ref("svstat"), "a"]), tmp / "xonly")
    got = run(without_dac([ours("svstat"), "a"]), tmp / "xonly")
    assert got == want == (111, b"", b"svstat: fatal: unable to open current directory: access denied\n")


def test_names_with_odd_bytes(crafted: Callable[..., Path], tmp: Path) -> None:
    names = [b"with space", b"new\nline", b"caf\xe9", b"\xff\xfe", b"-dash"]
    for n in names:
        crafted(n, status=record(pid=11))
    compare(tmp, *names)
    compare(tmp, *[tmp / os.fsdecode(n) for n in names])


def test_relative_paths_resolve_from_the_start_directory(crafted: Callable[..., Path],
                                                         tmp: Path) -> None:
    crafted("a", status=record(pid=1))
    crafted("a/b", status=record(pid=2))
    compare(tmp, "a", "a/b", "a", "nonexistent", "a/b")


# ---- states driven by the reference supervise --------------------------------

def status_of(d: Path) -> bytes:
    return run([ref("svstat"), d.name], d.parent)[1]


def start_supervise(procs: Procs, d: Path) -> None:
    procs.start([ref("supervise"), str(d)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    wait_for(lambda: run([ref("svok"), str(d)], d.parent)[0] == 0, what="supervise running")


@pytest.mark.skipif(not have_ref("supervise"), reason="daemontools not installed")
def test_states_of_a_real_supervise(procs: Procs, tmp: Path) -> None:
    d = make_service(tmp / "svc", "trap '' TERM\nexec sleep 1000", down=True)
    start_supervise(procs, d)
    wait_for(lambda: b"down" in status_of(d), what="down, normally down")
    compare(tmp, "svc")
    run([ref("svc"), "-u", str(d)], tmp)
    wait_for(lambda: b"up (pid" in status_of(d), what="up")
    compare(tmp, "svc")
    run([ref("svc"), "-p", str(d)], tmp)
    wait_for(lambda: b"paused" in status_of(d), what="paused")
    compare(tmp, "svc")
    run([ref("svc"), "-c", str(d)], tmp)
    # sh ignores TERM, so the service stays up and wants down
    run([ref("svc"), "-d", str(d)], tmp)
    wait_for(lambda: b"want down" in status_of(d), what="want down")
    compare(tmp, "svc")
    run([ref("svc"), "-ok", str(d)], tmp)
    wait_for(lambda: status_of(d).startswith(b"svc: down"), what="down after kill")
    compare(tmp, "svc")
    run([ref("svc"), "-o", str(d)], tmp)
    wait_for(lambda: b"up (pid" in status_of(d), what="up once")
    compare(tmp, "svc")
    run([ref("svc"), "-x", str(d)], tmp)
    run([ref("svc"), "-k", str(d)], tmp)
    procs.started[-1].wait(timeout=10)
    assert status_of(d) == b"svc: supervise not running\n"
    compare(tmp, "svc")


@pytest.mark.skipif(not have_ref("supervise"), reason="daemontools not installed")
def test_want_up_while_down(procs: Procs, tmp: Path) -> None:
    # The reference announces "up" before its one-second sleep after a start,
    # so "down, want up" is not visible while it runs; but told to exit, it
    # leaves exactly that record behind once the service is gone. Holding ok
    # open here makes svstat read it as if supervise still ran.
    d = make_service(tmp / "svc", "exec sleep 1000")
    start_supervise(procs, d)
    wait_for(lambda: b"up (pid" in status_of(d), what="up")
    run([ref("svc"), "-x", str(d)], tmp)
    run([ref("svc"), "-k", str(d)], tmp)
    assert procs.started[-1].wait(timeout=10) == 0
    fd = os.open(d / "supervise" / "ok", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert b", normally up, want up\n" in status_of(d)
        compare(tmp, "svc")
    finally:
        os.close(fd)
