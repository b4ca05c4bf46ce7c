"""dtd --init, and dtd as PID 1 of a new PID namespace (``unshare --pid
--fork --mount-proc``): orphans reaped, SIGTERM brings every service down
and dtd exits 0, an essential service that stops for good takes everything
down and dtd exits with its code."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Procs, make_service, ours, processes_under, up_pid, wait_for

from dtd import status


def _unshare_works() -> bool:
    if os.getuid() != 0 or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_ns = pytest.mark.skipif(not _unshare_works(), reason="cannot make a PID namespace here")


def stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def tree(pid: int) -> list[int]:
    """pid's descendants, as our /proc shows them (zombies too)."""
    found = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def state(pid: int) -> str:
    fields = stat_fields(pid)
    return fields[0] if fields else ""


def start_init(procs: Procs, scan: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """dtd --init as PID 1 of a new PID namespace; the unshare process and
    dtd's pid as we see it."""
    with open(scan.parent / "dtd.out", "ab") as out:
        p = procs.start(["unshare", "--pid", "--fork", "--mount-proc", ours("dtd"), "--init",
                         "--scan", str(scan), "--socket", "none", "--bus", "none", *extra],
                        stdout=out, stderr=out)
    dtd = wait_for(lambda: children(p.pid) and children(p.pid)[0], what="dtd started")
    assert isinstance(dtd, int)
    return p, dtd


def ns_pid(pid: int) -> int:
    """pid inside its own (innermost) PID namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return 0


@needs_ns
def test_pid1_reaps_a_double_forked_orphan(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    fifo = swept / "fifo"
    os.mkfifo(fifo)
    # the inner shell starts head and exits at once: head is an orphan
    d = make_service(scan / "forker", f"sh -c 'head -c1 {fifo} >/dev/null &'\nexec sleep 1000")
    p, dtd = start_init(procs, scan)
    assert ns_pid(dtd) == 1
    orphan = wait_for(lambda: next((c for c in children(dtd)
                                    if Path(f"/proc/{c}/comm").read_text() == "head\n"), 0),
                      what="the orphan handed to PID 1")
    assert up_pid(d)
    with open(fifo, "wb") as f:  # the orphan reads a byte and exits
        f.write(b"x")
    # reaped: its /proc entry goes; a zombie would stay
    wait_for(lambda: not Path(f"/proc/{orphan}").exists(), what="the orphan reaped")
    assert [q for q in tree(dtd) if state(q) == "Z"] == []
    os.kill(dtd, signal.SIGTERM)
    assert p.wait(timeout=20) == 0


@pytest.mark.slow
@needs_ns
def test_sigterm_brings_everything_down_and_dtd_exits_0(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    polite = make_service(scan / "polite", "trap 'echo bye > ../../polite.out; exit 0' TERM\n"
                          "sleep 1000 & wait")
    # ignores TERM: killed after the stop timeout; its sleep outlives it
    # and gets TERM then KILL as a stray
    stubborn = make_service(scan / "stubborn", "trap '' TERM\nsleep 1000 & wait\nexec sleep 1000")
    p, dtd = start_init(procs, scan, "--stop-timeout", "1")
    wait_for(lambda: up_pid(polite) and up_pid(stubborn))
    wait_for(lambda: len(tree(dtd)) >= 8, what="services and their sleeps")
    os.kill(dtd, signal.SIGTERM)
    assert p.wait(timeout=20) == 0
    assert (swept / "polite.out").read_text() == "bye\n"
    assert not status.supervise_running(str(polite))


@needs_ns
def test_sigquit_and_sigint_stop_it_too(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    for sig in (signal.SIGQUIT, signal.SIGINT):
        d = make_service(scan / "s", "exec sleep 1000")
        p, dtd = start_init(procs, scan)
        wait_for(lambda: up_pid(d))  # noqa: B023 (called at once)
        os.kill(dtd, sig)
        assert p.wait(timeout=20) == 0, sig


@needs_ns
def test_an_essential_service_brought_down_ends_dtd_with_its_code(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    ess = make_service(scan / "ess", "trap 'exit 3' TERM\nsleep 1000 & wait")
    (ess / "essential").touch()
    other = make_service(scan / "other", "trap 'echo bye > ../../other.out; exit 0' TERM\n"
                         "sleep 1000 & wait")
    p, _ = start_init(procs, scan)
    wait_for(lambda: up_pid(ess) and up_pid(other))
    subprocess.run([ours("svc"), "-d", str(ess)], check=True)
    assert p.wait(timeout=20) == 3
    assert (swept / "other.out").read_text() == "bye\n"
    assert b"dtd: warning: essential service ess stopped: exiting 3\n" in (
        swept / "dtd.out").read_bytes()


@needs_ns
def test_an_essential_service_killed_by_a_signal_exits_128_plus_it(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    ess = make_service(scan / "ess", "exec sleep 1000")
    (ess / "essential").touch()
    p, _ = start_init(procs, scan)
    wait_for(lambda: up_pid(ess))
    subprocess.run([ours("svc"), "-d", str(ess)], check=True)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM


@needs_ns
def test_an_essential_service_whose_finish_says_125(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    ess = make_service(scan / "ess", "exit 3")
    finish = ess / "finish"
    finish.write_text("#!/bin/sh\nexit 125\n")
    finish.chmod(0o755)
    (ess / "essential").touch()
    p, _ = start_init(procs, scan)
    assert p.wait(timeout=20) == 3


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_essential_is_ignored_without_init(procs: Procs, swept: Path) -> None:
    """Outside --init a stopped essential service is only a stopped
    service: dtd supervises the others on, as svscan would."""
    scan = swept / "service"
    ess = make_service(scan / "ess", "trap 'exit 3' TERM\nsleep 1000 & wait")
    (ess / "essential").touch()
    other = make_service(scan / "other", "exec sleep 1000")
    sock = swept / "dtd.sock"
    with open(swept / "dtd.out", "ab") as out:
        root = procs.start([ours("dtd"), "--scan", str(scan), "--socket", str(sock),
                            "--bus", "none"], stdout=out, stderr=out)
    wait_for(lambda: up_pid(ess) and up_pid(other) and sock.exists())
    running = up_pid(other)
    subprocess.run([ours("svc"), "-d", str(ess)], check=True)

    def stopped_in_the_model() -> bool:
        got = subprocess.run(["curl", "-sf", "--unix-socket", str(sock),
                              "http://dtd/v1/services/ess"], capture_output=True)
        return b'"stopped":true' in got.stdout
    wait_for(stopped_in_the_model, what="the model to say stopped")
    # a root that had begun to stop would have sent the others d and x
    subprocess.run([ours("svc"), "-u", str(ess)], check=True)
    wait_for(lambda: up_pid(ess), what="ess up again")
    assert root.poll() is None and up_pid(other) == running
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0


@pytest.mark.slow
def test_init_ends_what_outlives_the_services(procs: Procs, swept: Path) -> None:
    """Not as PID 1, where no kernel ends the namespace for us: a daemon
    that escaped its service gets TERM, one that ignores TERM gets KILL."""
    scan = swept / "service"
    d = make_service(scan / "spawner", "sh -c 'sleep 1001 &'\n"
                     "sh -c \"(trap '' TERM; exec sleep 1002) &\"\nexec sleep 1000")
    with open(swept / "dtd.out", "ab") as out:
        root = procs.start([ours("dtd"), "--init", "--scan", str(scan), "--socket", "none",
                            "--bus", "none"], stdout=out, stderr=out)

    def strays() -> list[int]:
        return [q for q in tree(root.pid)
                if Path(f"/proc/{q}/cmdline").read_bytes().startswith(b"sleep\x00100")
                and Path(f"/proc/{q}/cmdline").read_bytes() != b"sleep\x001000\x00"]
    wait_for(lambda: up_pid(d) and len(strays()) == 2, what="two escaped daemons")
    escaped = strays()
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0
    assert [q for q in escaped if state(q) not in ("", "Z")] == []
    assert processes_under(scan) == []


@needs_ns
def test_a_container_logs_to_stdout_to_the_last_line(procs: Procs, swept: Path) -> None:
    """dtd --init --log-stdout, the usual container: every line of the
    essential service that ends it is out before dtd exits, the unfinished
    last one too."""
    scan = swept / "service"
    ess = make_service(scan / "app", "echo starting\nprintf 'giving up'\nexit 3")
    finish = ess / "finish"
    finish.write_text("#!/bin/sh\nexit 125\n")
    finish.chmod(0o755)
    (ess / "essential").touch()
    make_service(scan / "side", "echo side car\nexec sleep 1000")
    with open(swept / "stdout", "wb") as out, open(swept / "stderr", "wb") as err:
        p = procs.start(["unshare", "--pid", "--fork", "--mount-proc", ours("dtd"), "--init",
                         "--log-stdout", "--scan", str(scan), "--socket", "none", "--bus", "none"],
                        stdout=out, stderr=err)
    assert p.wait(timeout=20) == 3
    lines = (swept / "stdout").read_bytes().split(b"\n")
    assert lines.pop() == b""
    assert sorted(lines) == [b"app: giving up", b"app: starting", b"side: side car"]
    assert lines.index(b"app: starting") < lines.index(b"app: giving up")


@needs_ns
def test_as_pid1_even_svscan_is_an_init(procs: Procs, swept: Path) -> None:
    """No --init: being process 1 is enough, under either name."""
    scan = swept / "service"
    ess = make_service(scan / "ess", "trap 'exit 4' TERM\nsleep 1000 & wait")
    (ess / "essential").touch()
    with open(swept / "out", "wb") as out:
        p = procs.start(["unshare", "--pid", "--fork", "--mount-proc", ours("svscan"), str(scan)],
                        stdout=out, stderr=out)
    wait_for(lambda: up_pid(ess))
    subprocess.run([ours("svc"), "-d", str(ess)], check=True)
    assert p.wait(timeout=20) == 4
    assert b"svscan: warning: essential service ess stopped: exiting 4\n" in (
        swept / "out").read_bytes()
