"""dtd/container.py: the processes below a pid, the exit code an essential
service hands on, the essential file."""

import os
import signal
import subprocess
from pathlib import Path

from conftest import Procs, wait_for
from dtd import container
from dtd.model import Service


def test_descendants_finds_grandchildren_and_skips_zombies(procs: Procs) -> None:
    # sh starts two sleeps (one in a subshell) and waits
    p = procs.start(["sh", "-c", "sleep 1000 & (sleep 1001 & wait) & wait"])
    found = wait_for(lambda: (lambda d: d if len(d) == 3 else None)(container.descendants(p.pid)),
                     what="three descendants")
    assert isinstance(found, list)
    names = sorted(Path(f"/proc/{q}/cmdline").read_bytes() for q in found)
    assert names == [b"sh\0-c\0sleep 1000 & (sleep 1001 & wait) & wait\0",
                     b"sleep\x001000\x00", b"sleep\x001001\x00"]
    assert os.getpid() not in found and p.pid not in found
    # a zombie is no longer a process to signal
    z = subprocess.Popen(["true"])
    wait_for(lambda: Path(f"/proc/{z.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert z.pid not in container.descendants(os.getpid())
    z.wait()


def test_signal_all_ignores_the_gone(procs: Procs) -> None:
    p = procs.start(["sleep", "1000"])
    container.signal_all([p.pid, 2**22 + 12345], signal.SIGTERM)
    assert p.wait(timeout=5) == -signal.SIGTERM


def record(tmp: Path, stopped: bool, code: int | None, sig: int = 0) -> Service:
    rec = Service("s", str(tmp))
    rec.stopped, rec.exit_code, rec.exit_signal = stopped, code, sig
    return rec


def test_exit_code_as_a_shell_reports_it(tmp_path: Path) -> None:
    assert container.exit_code(record(tmp_path, True, 3)) == 3
    assert container.exit_code(record(tmp_path, True, 0)) == 0
    assert container.exit_code(record(tmp_path, True, -1, signal.SIGKILL)) == 137
    assert container.exit_code(record(tmp_path, True, None)) == 0


def test_essential_needs_the_file_and_a_stop_for_good(tmp_path: Path) -> None:
    assert not container.is_essential(record(tmp_path, True, 3))
    (tmp_path / "essential").touch()
    assert container.is_essential(record(tmp_path, True, 3))
    assert not container.is_essential(record(tmp_path, False, 3))
