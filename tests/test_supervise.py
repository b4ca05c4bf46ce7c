"""supervise, the worker: messages and exit codes as the reference's, control
bytes, the status files, the one-second rule, adoption of an orphaned run."""

import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Procs, have_ref, make_service, ours, pid_alive, ref, up_pid, wait_for

from dtd import forker, status

needs_ref = pytest.mark.skipif(not have_ref("supervise"), reason="daemontools not installed")


def run(argv: list[str], cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    p = subprocess.run(argv, capture_output=True, cwd=cwd, timeout=20)
    return p.returncode, p.stdout, p.stderr


def read_status(d: Path) -> status.Status:
    st = status.read(str(d))
    assert st is not None
    return st


def start(procs: Procs, d: Path, prog: str | None = None) -> subprocess.Popen[bytes]:
    p = procs.start([prog or ours("supervise"), str(d)], stderr=subprocess.PIPE)
    wait_for(lambda: (d / "supervise" / "ok").exists() and status.supervise_running(str(d)),
             what="supervise to run")
    return p


def control(d: Path, data: bytes) -> None:
    fd = os.open(d / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# -- usage and fatal errors: the reference's messages and codes --------------

@needs_ref
@pytest.mark.parametrize("args", [[], ["a", "b"]])
def test_usage_matches_reference(args: list[str]) -> None:
    assert run([ours("supervise"), *args]) == run([ref("supervise"), *args])
    assert run([ours("supervise"), *args])[0] == 100


@needs_ref
def test_missing_directory_matches_reference(swept: Path) -> None:
    mine = run([ours("supervise"), "nonexistent"], cwd=swept)
    theirs = run([ref("supervise"), "nonexistent"], cwd=swept)
    assert mine == theirs
    assert mine[2] == b"supervise: fatal: unable to chdir to nonexistent: file does not exist\n"
    assert mine[0] == 111


@needs_ref
@pytest.mark.parametrize("holder", ["ours", "ref"])
def test_lock_held_matches_reference(procs: Procs, swept: Path, holder: str) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d, ours("supervise") if holder == "ours" else ref("supervise"))
    mine = run([ours("supervise"), "s"], cwd=swept)
    theirs = run([ref("supervise"), "s"], cwd=swept)
    assert mine == theirs
    assert mine == (111, b"", b"supervise: fatal: unable to acquire s/supervise/lock: temporary failure\n")


def test_supervise_directory_modes(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    sup = d / "supervise"
    assert stat.S_IMODE(sup.stat().st_mode) == 0o700
    for fifo in ("control", "ok"):
        mode = (sup / fifo).stat().st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    assert (sup / "lock").is_file()


# -- the status files -----------------------------------------------------------

def test_status_is_runit_layout_with_stat_and_pid(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d), what="service up")
    raw = (d / "supervise" / "status").read_bytes()
    assert len(raw) == 20
    assert int.from_bytes(raw[12:16], "little") == pid
    assert raw[16:20] == b"\0u\0\1"
    since = read_status(d).since
    assert abs(time.time() - since) < 5
    assert (d / "supervise" / "stat").read_bytes() == b"run\n"
    assert (d / "supervise" / "pid").read_bytes() == b"%d\n" % pid
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0, what="service down")
    raw = (d / "supervise" / "status").read_bytes()
    assert raw[12:20] == b"\0\0\0\0\0d\0\0"
    # stat is written right after status
    wait_for(lambda: (d / "supervise" / "stat").read_bytes() == b"down\n", what="stat")
    assert (d / "supervise" / "pid").read_bytes() == b""


def test_down_file_is_honoured(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000", down=True)
    start(procs, d)
    st = read_status(d)
    assert st.pid == 0 and st.want == ord("d")
    control(d, b"u")
    wait_for(lambda: up_pid(d), what="svc -u to start it")


# -- control bytes ----------------------------------------------------------

TRAP = r"""
trap 'echo HUP >> sigs' HUP
trap 'echo ALRM >> sigs' ALRM
trap 'echo INT >> sigs' INT
trap 'echo QUIT >> sigs' QUIT
trap 'echo USR1 >> sigs' USR1
trap 'echo USR2 >> sigs' USR2
trap 'echo TERM >> sigs; exit 0' TERM
echo start >> starts
while :; do sleep 0.05; done
"""


def signals_seen(d: Path) -> list[str]:
    try:
        return (d / "sigs").read_text().split()
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("byte,name", [(b"h", "HUP"), (b"a", "ALRM"), (b"i", "INT"),
                                       (b"q", "QUIT"), (b"1", "USR1"), (b"2", "USR2"),
                                       (b"t", "TERM")])
def test_signal_bytes(procs: Procs, swept: Path, byte: bytes, name: str) -> None:
    d = make_service(swept / "s", TRAP)
    start(procs, d)
    wait_for(lambda: (d / "starts").exists(), what="run to start")
    control(d, byte)
    wait_for(lambda: name in signals_seen(d), what=f"{name} to arrive")


def test_kill_byte_restarts(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    first = wait_for(lambda: up_pid(d))
    control(d, b"k")
    wait_for(lambda: up_pid(d) not in (0, first), what="a new pid after k")
    assert not pid_alive(first)


def test_down_sends_term_then_cont_and_stays_down(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", TRAP)
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    control(d, b"p")
    wait_for(lambda: read_status(d).paused, what="paused")
    # a stopped process gets TERM only once CONT wakes it: d sends both
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0, what="down")
    assert not pid_alive(pid)
    assert "TERM" in signals_seen(d)
    st = read_status(d)
    assert st.want == ord("d") and not st.paused
    assert (d / "starts").read_text().count("start") == 1


def test_pause_and_continue(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))

    def state() -> str:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    control(d, b"p")
    wait_for(lambda: state() == "T", what="stopped")
    assert read_status(d).paused
    assert (d / "supervise" / "stat").read_text() == "run, paused\n"
    control(d, b"c")
    wait_for(lambda: state() != "T", what="continued")
    assert not read_status(d).paused


def test_once_runs_once(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\nexec sleep 1000", down=True)
    start(procs, d)
    control(d, b"o")
    pid = wait_for(lambda: up_pid(d))
    assert read_status(d).want == 0
    wait_for(lambda: (d / "starts").exists(), what="run to begin")
    control(d, b"k")
    wait_for(lambda: up_pid(d) == 0, what="down after the one run")
    assert not pid_alive(pid)
    # no restart: a second start would add a line
    control(d, b"x")
    wait_for(lambda: not status.supervise_running(str(d)), what="exit")
    assert (d / "starts").read_text().count("start") == 1


def test_exit_waits_for_the_service(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    p = start(procs, d)
    wait_for(lambda: up_pid(d))
    control(d, b"x")
    # still up: x alone does not stop the service
    time.sleep(0.2)
    assert p.poll() is None and up_pid(d)
    control(d, b"d")
    assert p.wait(timeout=10) == 0


def test_garbage_on_control_changes_nothing(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\nexec sleep 1000")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    wait_for(lambda: (d / "starts").exists() and (d / "starts").read_text(), what="run to begin")
    before = (d / "supervise" / "status").read_bytes()
    rng = random.Random(7)
    junk = bytes(b for b in rng.randbytes(4096) if b not in status.COMMANDS)
    control(d, junk)
    control(d, b"\0\n\xff udpx"[:0])  # an empty write is harmless too
    # the worker still answers, and nothing moved
    control(d, b"p")
    wait_for(lambda: read_status(d).paused)
    after = (d / "supervise" / "status").read_bytes()
    assert after[:16] == before[:16]
    assert up_pid(d) == pid and (d / "starts").read_text().count("start") == 1


# -- the one-second rule, and staying responsive under it -------------------

def test_fast_exiting_run_is_started_once_a_second(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts")
    start(procs, d)
    wait_for(lambda: (d / "starts").exists())
    t0 = time.monotonic()
    wait_for(lambda: (d / "starts").read_text().count("start") >= 3, timeout=10)
    elapsed = time.monotonic() - t0
    starts = (d / "starts").read_text().count("start")
    # three starts take at least two seconds
    assert elapsed >= 1.9, (starts, elapsed)
    # and a command is answered at once, inside the second
    t1 = time.monotonic()
    control(d, b"d")
    wait_for(lambda: read_status(d).want == ord("d"), timeout=2)
    assert time.monotonic() - t1 < 0.1
    n = (d / "starts").read_text().count("start")
    time.sleep(1.5)  # a start would be due by now if d had been ignored
    assert (d / "starts").read_text().count("start") == n


def test_down_right_after_start_takes_effect_at_once(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    t0 = time.monotonic()
    control(d, b"d")
    wait_for(lambda: not pid_alive(pid), timeout=2)
    assert time.monotonic() - t0 < 0.5


@needs_ref
@pytest.mark.parametrize("case", ["missing", "not-executable"])
def test_bad_run_messages_match_reference(procs: Procs, swept: Path, case: str) -> None:
    results = {}
    for who, prog in (("ours", ours("supervise")), ("ref", ref("supervise"))):
        d = swept / who
        d.mkdir()
        if case == "not-executable":
            (d / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
            (d / "run").chmod(0o644)
        p = procs.start([prog, who], cwd=swept, stderr=subprocess.PIPE)
        assert p.stderr is not None
        os.set_blocking(p.stderr.fileno(), False)
        got = b""
        t0 = time.monotonic()

        def two_lines() -> bool:
            nonlocal got
            try:
                got += p.stderr.read() or b""  # type: ignore[union-attr]
            except BlockingIOError:
                pass
            return got.count(b"\n") >= 2

        wait_for(two_lines, timeout=5)
        results[who] = (got.split(b"\n")[0].replace(who.encode(), b"DIR"), time.monotonic() - t0)
        if who == "ours":
            # still responsive while it retries
            control(d, b"d")
            wait_for(lambda: read_status(d).want == ord("d"), timeout=1)
    assert results["ours"][0] == results["ref"][0]
    reason = b"file does not exist" if case == "missing" else b"access denied"
    assert results["ours"][0] == b"supervise: fatal: unable to start DIR/run: " + reason
    # a retry about once a second, not a busy loop
    assert results["ours"][1] >= 0.9


# -- blocking in the kernel --------------------------------------------------

def test_idle_worker_blocks_in_poll_without_timeout(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    p = start(procs, d)
    wait_for(lambda: up_pid(d))

    def blocked() -> list[str] | None:
        fields = Path(f"/proc/{p.pid}/syscall").read_text().split()
        return fields if fields[0] in ("7", "271") else None  # poll, ppoll on x86_64

    fields = wait_for(blocked, what="worker to block")
    if fields[0] == "7":
        assert int(fields[3], 16) & 0xFFFFFFFF == 0xFFFFFFFF  # timeout -1: no wake-up
    else:
        assert int(fields[3], 16) == 0  # NULL timespec


# -- a worker killed with SIGKILL and a new one ------------------------------

def test_new_worker_adopts_orphaned_run(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\nexec sleep 1000")
    p = start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert pid_alive(pid)
    start(procs, d)
    assert up_pid(d) == pid
    assert (d / "starts").read_text().count("start") == 1
    # and it supervises it: killing the orphan gets a fresh start
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: up_pid(d) not in (0, pid), what="restart of the adopted service")
    wait_for(lambda: (d / "starts").read_text().count("start") == 2, what="the second start")


def test_stale_status_is_not_adopted(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\nexec sleep 1000")
    (d / "supervise").mkdir(mode=0o700)
    # our own pid, with a stamp from an hour ago: alive, but not that process
    old = status.Status(int(time.time()) - 3600, 0, os.getpid(), False, ord("u"), False, 1)
    (d / "supervise" / "status").write_bytes(status.pack(old))
    start(procs, d)
    wait_for(lambda: up_pid(d) not in (0, os.getpid()), what="a fresh start")


# -- the forker's warm-up ------------------------------------------------------

def test_prewarm_leaves_nothing_behind(swept: Path) -> None:
    # in a child: it runs workers' code in the calling process
    code = ("import os, sys; from dtd import forker; forker.prewarm(); "
            "print(os.getcwd()); print(len(os.listdir('/proc/self/fd')))")
    plain = "import os; print(os.getcwd()); print(len(os.listdir('/proc/self/fd')))"
    before = subprocess.run([ours("python"), "-c", plain],
                            capture_output=True, cwd=swept, check=True, timeout=20)
    after = subprocess.run([ours("python"), "-c", code + "; print(os.getpid())"],
                           capture_output=True, cwd=swept,
                           env=dict(os.environ, TMPDIR=str(swept)), check=True, timeout=20)
    assert after.stderr == b""
    # the same directory and descriptors afterwards, and no service directory
    # left where it warmed up (/dev/shm, or here, TMPDIR, without one)
    cwd, fds, pid = after.stdout.decode().split()
    assert f"{cwd}\n{fds}\n".encode() == before.stdout
    assert os.listdir(swept) == []
    assert not os.path.lexists(os.path.join(forker._scratch(), f".dtd-prewarm-{pid}"))


def test_prewarm_leaves_alone_a_directory_it_did_not_make(swept: Path) -> None:
    """Its scratch directory is world-writable: a directory (or a symlink)
    already at its name is someone else's, and its contents stay."""
    code = ("import os; from dtd import forker; "
            "d = os.path.join(forker._scratch(), f'.dtd-prewarm-{os.getpid()}'); "
            f"os.symlink({str(swept)!r}, d); "
            "forker.prewarm(); os.unlink(d)")
    (swept / "supervise").mkdir()
    (swept / "supervise" / "status").write_bytes(b"theirs")
    (swept / "run").write_bytes(b"theirs")
    subprocess.run([ours("python"), "-c", code], check=True, timeout=20)
    assert (swept / "supervise" / "status").read_bytes() == b"theirs"
    assert (swept / "run").read_bytes() == b"theirs"
