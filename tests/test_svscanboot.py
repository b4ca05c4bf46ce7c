"""svscanboot: what Debian's /usr/bin/svscanboot script does, step by step,
with our svc, svscan and readproctitle: leftover supervise processes are
told to exit, svscan's and its services' errors end up in readproctitle's
command line, both run with PATH as their whole environment.

The reference script cannot run here side by side (it always scans
/etc/service); the test checks the same observable steps instead, and
that the script still reads as this test assumes."""

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Procs, make_service, ours, pid_alive, ref, wait_for
from dtd import svscanboot

DOTS = "." * 400


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def environ(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read()


def under(path: Path) -> list[int]:
    """Processes whose working directory is in path."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == str(path) or cwd.startswith(f"{path}/"):
                found.append(int(entry))
    return found


@pytest.fixture
def scan(tmp: Path) -> Iterator[Path]:
    """A scan directory; every process left working in it is ended."""
    d = tmp / "service"
    d.mkdir()
    yield d
    for _ in range(3):
        for pid in under(tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_reference_script_is_what_we_follow() -> None:
    text = Path(ref("svscanboot")).read_text()
    assert f"PATH={svscanboot.PATH}\n" in text
    assert "svc -dx /etc/service/* /etc/service/*/log\n" in text
    assert "env - PATH=$PATH svscan /etc/service 2>&1 | \\\n" in text
    assert f"env - PATH=$PATH readproctitle service errors: {DOTS}\n" in text


@pytest.mark.slow
def test_boot(scan: Path, procs: Procs) -> None:
    # a supervise left over from an earlier boot, to be told to exit
    old = make_service(scan / "old", "exec sleep 300")
    leftover = procs.start([ref("supervise"), str(old)])
    wait_for(lambda: (old / "supervise" / "ok").exists(), what="the leftover supervise")
    # a service that complains on stderr, which is svscan's
    make_service(scan / "noisy", "echo boom >&2; exec sleep 300")
    boot = procs.start([ours("svscanboot"), str(scan)])
    assert leftover.wait(timeout=30) == 0
    title: list[int] = []

    def shown() -> bool:
        title[:] = [p for p in children(boot.pid) if b"boom" in cmdline(p)]
        return bool(title)
    wait_for(shown, timeout=30, what="boom in readproctitle's command line")
    args = cmdline(title[0]).split(b"\0")
    assert args[1:3] == [b"service", b"errors:"] and len(args[3]) == 400
    assert args[3].startswith(b"...") and args[3].endswith(b"boom\n")
    path = f"PATH={Path(ours('svc')).parent}:{svscanboot.PATH}\0".encode()
    scanner = [p for p in children(boot.pid) if p != title[0]]
    # (svscan's environment cannot be read back: setproctitle reuses its area)
    assert len(scanner) == 1 and environ(title[0]) == path
    assert str(scan).encode() in cmdline(scanner[0])
    # stdin, stdout and stderr of svscanboot itself are /dev/null
    assert [os.readlink(f"/proc/{boot.pid}/fd/{fd}") for fd in (0, 1, 2)] == ["/dev/null"] * 3
    # the end of readproctitle's input ends svscanboot, with its exit code;
    # svscan, the supervise processes and the services all hold the pipe
    # (a worker the scanner asked for just before it died may still be on
    # its way: kill until nothing is left)
    os.kill(scanner[0], signal.SIGKILL)

    def all_killed() -> bool:
        left = under(scan)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return not left and not pid_alive(scanner[0])
    wait_for(all_killed, what="svscan and everything in its directory killed")
    assert boot.wait(timeout=30) == 0
    assert not pid_alive(title[0])


def test_glob_as_the_shell(tmp: Path) -> None:
    (tmp / "b").mkdir()
    (tmp / "a").mkdir()
    (tmp / ".hidden").mkdir()
    assert svscanboot.sh_glob(f"{tmp}/*") == [f"{tmp}/a", f"{tmp}/b"]
    assert svscanboot.sh_glob(f"{tmp}/*/log") == [f"{tmp}/*/log"]
