"""The root: pickup, log pairs that lose nothing, adoption after SIGKILL of
the root, replacement of a killed worker, descriptors, titles, bad entries,
hostile names, stopping, --daemonize."""

import fcntl
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    Procs,
    have_ref,
    make_service,
    ours,
    pid_alive,
    processes_under,
    ref,
    up_pid,
    wait_for,
)

from dtd import status


def worker_pid(d: Path) -> int:
    return status.lock_owner(str(d)) or 0


def start_root(procs: Procs, scan: Path, *extra: str) -> subprocess.Popen[bytes]:
    out = open(scan.parent / "root.out", "ab")
    p = procs.start([ours("dtd"), "--scan", str(scan), *extra], stdout=out, stderr=out)
    out.close()
    return p


def held(pid: int) -> set[str]:
    """What pid's descriptors point at; one closed while they are read
    (the root opens and closes files as it works) is left out."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return out


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def comm(pid: int) -> str:
    """pid's short name; "" for a process gone meanwhile (a service's
    short-lived children come and go under the scan directory)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def runs_of(d: Path) -> list[int]:
    """Copies of ./run: live processes whose cwd is d, other than its worker,
    whose parent is not one of them (a run's own children do not count)."""
    top = os.path.realpath(d)
    w = worker_pid(d)
    here = [p for p in processes_under(d)
            if p != w and os.readlink(f"/proc/{p}/cwd") == top and comm(p) != "supervise"]
    return [p for p in here if ppid(p) not in here]


def control(d: Path, data: bytes) -> None:
    fd = os.open(d / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_new_directory_is_picked_up_at_once(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    scan.mkdir()
    start_root(procs, scan)
    # prepared elsewhere and moved in, the usual way
    make_service(swept / "ready", "exec sleep 1000")
    os.rename(swept / "ready", scan / "ready")
    # well within svscan's five seconds: inotify, not the rescan
    wait_for(lambda: up_pid(scan / "ready"), timeout=2.5, what="pickup by rename")
    # made in place: started once run is executable, without a failed start
    (scan / "inplace").mkdir()
    run = scan / "inplace" / "run"
    run.write_text("#!/bin/sh\nexec sleep 1000\n")
    run.chmod(0o755)
    wait_for(lambda: up_pid(scan / "inplace"), timeout=2.5, what="pickup in place")
    assert b"unable to start" not in (swept / "root.out").read_bytes()


SEQ_WRITER = 'i=0\nwhile :; do i=$((i+1)); echo "$$ $i"; done'


def check_sequences(text: str) -> int:
    """Each writer instance (pid) numbered its lines 1, 2, 3...: a gap or a
    repeat is a lost or duplicated line."""
    last: dict[str, int] = {}
    count = 0
    for line in text.splitlines():
        pid, n = line.split()
        assert int(n) == last.get(pid, 0) + 1, f"after {pid} {last.get(pid, 0)} came {line!r}"
        last[pid] = int(n)
        count += 1
    return count


def read_log(main: Path) -> str:
    files = sorted(p for p in main.iterdir() if p.name.startswith("@")) + [main / "current"]
    return "".join(f.read_text() for f in files if f.exists())


@pytest.mark.slow
@pytest.mark.skipif(not have_ref("multilog"), reason="daemontools not installed")
def test_log_pair_loses_no_line_across_restarts(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    d = make_service(scan / "w", SEQ_WRITER)
    make_service(d / "log", f"exec {ref('multilog')} s16777215 ./main")
    start_root(procs, scan)
    for i in range(20):
        for side in (d, d / "log"):
            old = wait_for(lambda: up_pid(side), what=f"{side.name} up")
            control(side, b"t")
            wait_for(lambda: up_pid(side) not in (0, old), timeout=5, what=f"{side.name} restart {i}")
    control(d, b"d")
    wait_for(lambda: up_pid(d) == 0)
    # everything written is in the log once the logger has caught up
    wait_for(lambda: (d / "log" / "main" / "current").exists())
    size = -1
    while True:
        text = read_log(d / "log" / "main")
        if len(text) == size:
            break
        size = len(text)
        wait_for(lambda: len(read_log(d / "log" / "main")) != size or not pipe_has_data(scan, d),
                 timeout=5)
    assert check_sequences(text) > 1000


def pipe_has_data(scan: Path, d: Path) -> bool:
    import array
    import termios
    w = worker_pid(d / "log")
    fd = os.open(f"/proc/{w}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        return buf[0] > 0
    finally:
        os.close(fd)


def test_root_killed_and_restarted_adopts_everything(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    a = make_service(scan / "a", "exec sleep 1000")
    b = make_service(scan / "b", SEQ_WRITER.replace("done", "sleep 0.01; done"))
    make_service(b / "log", "exec cat >> ../out")
    root = start_root(procs, scan)
    dirs = [a, b, b / "log"]
    workers = {x: wait_for(lambda: worker_pid(x)) for x in dirs}
    services = {x: wait_for(lambda: up_pid(x)) for x in dirs}
    root.send_signal(signal.SIGKILL)
    root.wait()
    # without a root, everything goes on and svstat works
    assert all(pid_alive(w) for w in workers.values())
    n = len((b / "out").read_text())
    wait_for(lambda: len((b / "out").read_text()) > n, what="log lines without a root")
    root2 = start_root(procs, scan)
    wait_for(lambda: len([p for p in os.listdir(f"/proc/{root2.pid}/fd")]) > 8,
             what="the new root to settle")
    wait_for(lambda: any(t.startswith("pipe:") for t in held(root2.pid)), what="pipe recovered")
    # nothing restarted, no second worker
    assert {x: worker_pid(x) for x in dirs} == workers
    assert {x: up_pid(x) for x in dirs} == services
    supervisors = [p for p in processes_under(scan) if comm(p) == "supervise"]
    assert sorted(supervisors) == sorted(workers.values())
    # the new root holds the pair's pipe: the same pipe as the workers
    pipe = os.readlink(f"/proc/{workers[b]}/fd/1")
    assert os.readlink(f"/proc/{workers[b / 'log']}/fd/0") == pipe
    targets = held(root2.pid)
    assert pipe in targets
    # control works, and a killed worker is replaced by the new root
    control(a, b"t")
    wait_for(lambda: up_pid(a) not in (0, services[a]), what="svc -t after adoption")
    os.kill(workers[b], signal.SIGKILL)
    wait_for(lambda: worker_pid(b) not in (0, workers[b]), what="worker replaced")
    assert up_pid(b) == services[b] and runs_of(b) == [services[b]]
    new = worker_pid(b)
    assert os.readlink(f"/proc/{new}/fd/1") == pipe
    control(b, b"d")
    wait_for(lambda: up_pid(b) == 0)
    text = (b / "out").read_text()
    assert check_sequences(text) > 0


def test_killed_worker_is_replaced_with_one_run(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    d = make_service(scan / "s", "echo start >> ../starts\nexec sleep 1000")
    make_service(d / "log", "exec cat > /dev/null")
    start_root(procs, scan)
    w = wait_for(lambda: worker_pid(d))
    run = wait_for(lambda: up_pid(d))
    pipe = os.readlink(f"/proc/{w}/fd/1")
    os.kill(w, signal.SIGKILL)
    w2 = wait_for(lambda: worker_pid(d) not in (0, w) and worker_pid(d), what="new worker")
    assert up_pid(d) == run
    assert runs_of(d) == [run]
    assert (scan / "starts").read_text().count("start") == 1
    assert os.readlink(f"/proc/{w2}/fd/1") == pipe


def fd_targets(pid: int) -> dict[int, str]:
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def test_worker_descriptors_title_and_comm(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    d = make_service(scan / "web", "exec sleep 1000")
    make_service(d / "log", "exec cat > /dev/null")
    make_service(scan / "db", "exec sleep 1000")
    root = start_root(procs, scan)
    for x, title in ((d, b"supervise web"), (d / "log", b"supervise web/log"),
                     (scan / "db", b"supervise db")):
        w = wait_for(lambda: worker_pid(x))
        wait_for(lambda: up_pid(x))
        assert comm(w) == "supervise"
        assert cmdline(w).rstrip(b"\0") == title
        sup = os.path.realpath(x / "supervise")
        own = {f"{sup}/lock", f"{sup}/control", f"{sup}/ok"}
        # the ok FIFO is opened last, after the first start: set-up is over
        # (and no status.new or info.new is open) once it is there
        fds = wait_for(lambda: (lambda f: f if f"{sup}/ok" in f.values()
                                and not any(t.endswith(".new") for t in f.values())
                                else None)(fd_targets(w)), what="the worker set up")
        assert isinstance(fds, dict)
        others = {fd: t for fd, t in fds.items() if fd > 2 and t not in own}
        # beyond stdio and supervise/: only the worker's own wake-up pipe, and
        # the NOTIFY_SOCKET it offers its service (an abstract name, @xxxxx)
        notify = [t for t in others.values() if t.startswith("socket:")]
        assert len(notify) == 1 and re.search(rf" {notify[0][8:-1]} @[0-9a-f]{{5}}\n", Path(
            "/proc/net/unix").read_text()), fds
        assert len(others) == 3 and all(t.startswith("pipe:") for t in others.values()
                                        if t not in notify), fds
        assert not any("pidfd" in t or "inotify" in t or "eventpoll" in t
                       for t in fds.values())
        assert sorted(t for t in fds.values() if t in own) == sorted(
            [f"{sup}/lock", f"{sup}/control", f"{sup}/control", f"{sup}/ok"])
    assert fd_targets(worker_pid(d))[1] == fd_targets(worker_pid(d / "log"))[0]
    assert comm(root.pid) == "dtd"


def test_bad_entries_are_skipped_and_shown_in_the_title(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    scan.mkdir()
    (scan / "plainfile").write_text("not a service\n")
    (scan / "dangling").symlink_to(swept / "nowhere")
    make_service(scan / ".hidden", "exec sleep 1000")
    good = make_service(scan / "good", "exec sleep 1000")
    root = start_root(procs, scan)
    wait_for(lambda: up_pid(good))
    wait_for(lambda: b"unable to stat dangling: file does not exist" in cmdline(root.pid),
             what="the error in the title")
    assert cmdline(root.pid).startswith(b"dtd " + str(scan).encode() + b":")
    assert b"dtd: warning: unable to stat dangling: file does not exist\n" in (
        swept / "root.out").read_bytes()
    names = {os.readlink(f"/proc/{p}/cwd") for p in processes_under(scan) if comm(p) == "supervise"}
    assert names == {str(good)}


@pytest.mark.parametrize("name", [b"with space", b"new\nline", b"caf\xc3\xa9", b"raw\xff\xfebytes"])
def test_hostile_names(procs: Procs, swept: Path, name: bytes) -> None:
    scan = swept / "service"
    scan.mkdir()
    d = Path(os.fsdecode(bytes(scan) + b"/" + name))
    make_service(d, "exec sleep 1000")
    start_root(procs, scan)
    w = wait_for(lambda: worker_pid(d))
    wait_for(lambda: up_pid(d))
    assert comm(w) == "supervise"
    p = subprocess.run([ours("svstat"), os.fsdecode(name)], cwd=scan, capture_output=True)
    assert p.stdout.startswith(name + b": up (pid ")
    p = subprocess.run([ours("svc"), "-d", os.fsdecode(name)], cwd=scan, capture_output=True)
    assert p.returncode == 0
    wait_for(lambda: up_pid(d) == 0)


def test_sigterm_brings_everything_down_and_drains_loggers(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    d = make_service(scan / "w", SEQ_WRITER.replace("done", "sleep 0.001; done"))
    make_service(d / "log", "exec cat > ../out")
    make_service(scan / "s", "exec sleep 1000")
    root = start_root(procs, scan)
    wait_for(lambda: up_pid(d) and up_pid(d / "log") and up_pid(scan / "s"))
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0
    assert [p for p in processes_under(scan) if p != root.pid] == []
    check_sequences((d / "out").read_text())
    for x in (d, d / "log", scan / "s"):
        assert not status.supervise_running(str(x))


def test_daemonize_with_a_locked_pidfile(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    make_service(scan / "s", "exec sleep 1000")
    pidfile = swept / "run" / "dtd.pid"
    p = subprocess.run([ours("dtd"), "--daemonize", "--pidfile", str(pidfile), "--scan", str(scan)],
                       capture_output=True, timeout=10)
    assert p.returncode == 0
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    try:
        assert os.getsid(pid) != os.getsid(0)  # detached from our session
        wait_for(lambda: up_pid(scan / "s"))
        fd = os.open(pidfile, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        second = subprocess.run([ours("dtd"), "--daemonize", "--pidfile", str(pidfile),
                                 "--scan", str(scan)], capture_output=True, timeout=10)
        assert second.returncode == 111
        assert b"another dtd is running" in second.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=15)
    assert not pidfile.exists()
    shutil.rmtree(swept / "run", ignore_errors=True)
