"""Stopping a service: down-signal, timeout-kill, ./run as a session leader
(nosetsid), and kill-group, which takes the grandchildren down with it."""

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Procs, make_service, pid_alive, wait_for
from test_supervise import control, read_status, start, up_pid

from dtd import info, status

TRAPS = """
trap 'echo HUP >> sigs; exit 0' HUP
trap 'echo TERM >> sigs; exit 0' TERM
echo start >> starts
while :; do sleep 0.05; done
"""

# a grandchild whose parent is gone (double fork), then the service itself
GRANDCHILD = """
sh -c 'sleep 1000 & echo $! > grandchild'
exec sleep 1000
"""


def signals_seen(d: Path) -> list[str]:
    try:
        return (d / "sigs").read_text().split()
    except FileNotFoundError:
        return []


def grandchild(d: Path) -> int:
    try:
        return int((d / "grandchild").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def deaf_up(d: Path) -> int:
    """The pid of a service that ignores TERM, once it does: up_pid is
    there as soon as ./run is spawned, before the shell has run its trap
    (a TERM then killed it, under load); exec'd into sleep, it has."""
    pid = wait_for(lambda: up_pid(d))
    wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep",
             what="the trap set")
    return pid


@pytest.mark.parametrize("text", ["SIGHUP\n", "HUP", "hup", "1\n"])
def test_down_signal(procs: Procs, swept: Path, text: str) -> None:
    d = make_service(swept / "s", TRAPS)
    (d / "down-signal").write_text(text)
    start(procs, d)
    wait_for(lambda: up_pid(d) and (d / "starts").exists(), what="run to start")
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0, what="down")
    assert signals_seen(d) == ["HUP"]


def test_bad_down_signal_falls_back_to_term(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", TRAPS)
    (d / "down-signal").write_text("SIGNOTHING\n")
    p = start(procs, d)
    wait_for(lambda: up_pid(d) and (d / "starts").exists(), what="run to start")
    control(d, b"dx")
    assert p.wait(timeout=5) == 0
    assert signals_seen(d) == ["TERM"]
    assert p.stderr is not None
    assert b"supervise: warning: invalid " in p.stderr.read()


def test_timeout_kill(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "trap '' TERM\nexec sleep 1000")
    (d / "timeout-kill").write_text("300\n")
    start(procs, d)
    pid = deaf_up(d)
    t0 = time.monotonic()
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0, timeout=5, what="SIGKILL after timeout-kill")
    took = time.monotonic() - t0
    assert 0.25 <= took < 2, took
    assert not pid_alive(pid)

    def killed() -> bool:
        inf = info.read(str(d / info.INFO))
        return inf is not None and (inf.exit_code, inf.exit_signal) == (-1, signal.SIGKILL)

    wait_for(killed, what="exit=-1 signal=9 in info")


def test_without_timeout_kill_a_deaf_service_stays_up(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "trap '' TERM\nexec sleep 1000")
    start(procs, d)
    pid = deaf_up(d)
    control(d, b"d")
    time.sleep(0.5)
    assert up_pid(d) == pid and read_status(d).term_sent
    control(d, b"k")
    wait_for(lambda: up_pid(d) == 0)


def test_down_and_exit_honours_timeout_kill(procs: Procs, swept: Path) -> None:
    # what the root sends to every worker when it stops
    d = make_service(swept / "s", "trap '' TERM\nexec sleep 1000")
    (d / "timeout-kill").write_text("200")
    p = start(procs, d)
    pid = deaf_up(d)
    control(d, b"dx")
    assert p.wait(timeout=5) == 0
    assert not pid_alive(pid)


def test_timeout_kill_is_cancelled_by_an_exit(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\nexec sleep 1000")
    (d / "timeout-kill").write_text("400")
    start(procs, d)
    wait_for(lambda: up_pid(d))
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0)
    control(d, b"u")
    pid = wait_for(lambda: up_pid(d), what="second start")
    time.sleep(0.6)  # past the first d's deadline
    assert up_pid(d) == pid and pid_alive(pid)


def test_run_is_a_session_leader(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid


def test_nosetsid(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "exec sleep 1000")
    (d / "nosetsid").touch()
    p = start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    assert os.getsid(pid) == os.getsid(p.pid) and os.getpgid(pid) == os.getpgid(p.pid)
    # kill-group is not for a service that shares the worker's group
    (d / "kill-group").touch()
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0)
    assert p.poll() is None and status.supervise_running(str(d))


@pytest.mark.parametrize("command", [b"d", b"k"])
def test_kill_group_takes_the_grandchild(procs: Procs, swept: Path, command: bytes) -> None:
    d = make_service(swept / "s", GRANDCHILD)
    (d / "kill-group").touch()
    if command == b"d":
        (d / "down").touch()
    start(procs, d)
    if command == b"d":
        control(d, b"u")
    pid = wait_for(lambda: up_pid(d))
    gc = wait_for(lambda: grandchild(d), what="grandchild")
    assert os.getpgid(gc) == pid
    control(d, command)
    wait_for(lambda: not pid_alive(gc), timeout=5, what="grandchild gone")
    assert not pid_alive(pid)


def test_without_kill_group_the_grandchild_survives(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", GRANDCHILD)
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    gc = wait_for(lambda: grandchild(d), what="grandchild")
    try:
        control(d, b"d")
        wait_for(lambda: not pid_alive(pid), what="run down")
        assert pid_alive(gc)
    finally:
        kill_pid(gc)


def test_timeout_kill_with_kill_group(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "trap '' TERM\n(trap '' TERM; exec sleep 1000) &\n"
                     "echo $! > grandchild\nwait")
    (d / "kill-group").touch()
    (d / "timeout-kill").write_text("200")
    start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    gc = wait_for(lambda: grandchild(d), what="grandchild")
    control(d, b"d")
    wait_for(lambda: not pid_alive(gc) and not pid_alive(pid), timeout=5,
             what="SIGKILL to the group")


def test_adopted_run_keeps_its_group(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", GRANDCHILD)
    (d / "kill-group").touch()
    p = start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    gc = wait_for(lambda: grandchild(d), what="grandchild")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert pid_alive(pid) and pid_alive(gc)
    start(procs, d)
    assert up_pid(d) == pid
    control(d, b"d")
    wait_for(lambda: not pid_alive(gc) and not pid_alive(pid), timeout=5,
             what="the adopted group down")


def test_service_outlives_a_killed_worker_in_its_own_session(procs: Procs, swept: Path) -> None:
    # the worker's session is not the service's: a hangup of the worker's
    # terminal or group does not reach it
    d = make_service(swept / "s", "exec sleep 1000")
    p = start(procs, d)
    pid = wait_for(lambda: up_pid(d))
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert pid_alive(pid)
    kill_pid(pid)


def test_exit_while_wanted_down_arms_timeout_kill(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "trap '' TERM\nexec sleep 1000")
    p = start(procs, d)
    pid = deaf_up(d)
    control(d, b"d")  # no timeout-kill yet: nothing armed
    time.sleep(0.3)
    assert pid_alive(pid)
    (d / "timeout-kill").write_text("200")
    control(d, b"x")
    assert p.wait(timeout=5) == 0
    assert not pid_alive(pid)
