"""Shared fixtures: where our commands and the reference's live, waiting on
conditions with a deadline, and processes that are ended by pid or group."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

BIN = Path(sys.executable).parent  # our console scripts, in the virtualenv
REF = Path("/usr/bin")  # Debian's daemontools and runit


def ours(cmd: str) -> str:
    return str(BIN / cmd)


def ref(cmd: str) -> str:
    return str(REF / cmd)


def have_ref(cmd: str) -> bool:
    return (REF / cmd).exists()


def wait_for(pred: Callable[[], object], timeout: float = 10.0, interval: float = 0.005,
             what: str = "condition") -> object:
    """Poll pred until it returns something true; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def up_pid(d: Path) -> int:
    """The pid the status file of service directory d names, 0 if none."""
    from dtd import status
    try:
        st = status.read(str(d))
    except OSError:
        return 0
    return st.pid if st else 0


def fill_disk(directory: Path) -> Path:
    """Fill the file system of directory to its last byte with a file
    there (its path is returned: removing it frees the space)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
    return filler


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Procs:
    """Processes a test starts, each in its own session, so that teardown can
    end it and everything it started by process group."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self.extra_groups: list[int] = []

    def start(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
        self.started.append(p)
        return p

    def add_group(self, pgid: int) -> None:
        self.extra_groups.append(pgid)

    def stop_all(self) -> None:
        for p in self.started:
            for sig in (signal.SIGKILL,):
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for g in self.extra_groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.started:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        p.stop_all()
        # services are session leaders of their own (supervise makes them
        # so): what a test started in its temp dir has left that group
        sweep(tmp_path)


def make_service(path: Path, script: str, down: bool = False) -> Path:
    """A service directory whose run is a /bin/sh script."""
    path.mkdir(parents=True, exist_ok=True)
    run = path / "run"
    run.write_text("#!/bin/sh\n" + script + "\n")
    run.chmod(0o755)
    if down:
        (path / "down").touch()
    return path


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, removed afterwards even when the test passed."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def processes_under(directory: Path) -> list[int]:
    """Pids whose working directory lies under directory: supervisors and
    services a test started there, whatever session they moved to."""
    top = os.path.realpath(directory)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (cwd == top or cwd.startswith(top + "/")) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def sweep(directory: Path) -> None:
    """Kill, by process group and pid, everything running under directory."""
    for _ in range(50):
        pids = processes_under(directory)
        if not pids:
            return
        for pid in pids:
            try:
                own = os.getpgid(pid) == os.getpgrp()  # never pytest's own group
            except ProcessLookupError:
                continue
            for kill in ((lambda: os.kill(pid, signal.SIGKILL),) if own else
                         (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL),
                          lambda: os.kill(pid, signal.SIGKILL))):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.02)


@pytest.fixture
def swept(tmp_path: Path) -> Iterator[Path]:
    """A temp dir; at the end every process running under it is killed and
    the dir removed."""
    yield tmp_path
    sweep(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)
