"""svok: exit codes and messages against Debian's /usr/bin/svok.

"Running" means a real reader on a real supervise/ok FIFO: this process
holds one open, or a real supervise (the reference's) does.
"""

import os
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from clienttools import Result, can_lose_dac, run, without_dac

pytestmark = pytest.mark.skipif(not have_ref("svok"), reason="daemontools not installed")


def compare(cwd: Path, *args: str | bytes | Path) -> Result:
    want = run([ref("svok"), *args], cwd)
    got = run([ours("svok"), *args], cwd)
    assert got == want, f"svok {args!r} differs\nreference: {want}\nours:      {got}"
    return got


@pytest.fixture
def layout(tmp: Path) -> Iterator[Path]:
    """A directory of every shape svok can meet, one name each."""
    held = []
    for name in ("running", "notrunning", "with space", "caf\udce9", "new\nline"):
        (tmp / name / "supervise").mkdir(parents=True)
        os.mkfifo(tmp / name / "supervise" / "ok")
        if name != "notrunning":
            held.append(os.open(tmp / name / "supervise" / "ok", os.O_RDONLY | os.O_NONBLOCK))
    (tmp / "nook" / "supervise").mkdir(parents=True)
    (tmp / "nosupervise").mkdir()
    (tmp / "supfile").mkdir()
    (tmp / "supfile" / "supervise").touch()
    (tmp / "okdir" / "supervise" / "ok").mkdir(parents=True)
    (tmp / "okfile" / "supervise").mkdir(parents=True)
    (tmp / "okfile" / "supervise" / "ok").touch()
    (tmp / "file").touch()
    (tmp / "loop").symlink_to("loop")
    yield tmp
    for fd in held:
        os.close(fd)


NAMES = ["running", "notrunning", "with space", "caf\udce9", "new\nline", "nook",
         "nosupervise", "supfile", "okdir", "okfile", "file", "loop", "nodir", "", "-u", "--"]


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_one_directory(layout: Path, name: str) -> None:
    compare(layout, name)


def test_exit_codes(layout: Path) -> None:
    assert compare(layout, "running")[0] == 0
    assert compare(layout, "notrunning")[0] == 100
    assert compare(layout, "nook")[0] == 100
    assert compare(layout, "okdir")[0] == 111


def test_no_arguments(tmp: Path) -> None:
    assert compare(tmp) == (100, b"", b"svok: usage: svok dir\n")


def test_only_the_first_argument_counts(layout: Path) -> None:
    assert compare(layout, "running", "nodir")[0] == 0
    assert compare(layout, "notrunning", "running")[0] == 100
    assert compare(layout, "nodir", "running")[0] == 111


def test_absolute_path(layout: Path) -> None:
    compare(Path("/"), layout / "okdir")


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
@pytest.mark.parametrize("name", ["closed", "supclosed", "okclosed"])
def test_access_denied(layout: Path, name: str) -> None:
    (layout / "closed").mkdir(mode=0)
    (layout / "supclosed" / "supervise").mkdir(parents=True, mode=0)
    (layout / "okclosed" / "supervise").mkdir(parents=True)
    os.mkfifo(layout / "okclosed" / "supervise" / "ok", 0)
    want = run(without_dac([ref("svok"), name]), layout)
    got = run(without_dac([ours("svok"), name]), layout)
    assert got == want
    assert got[0] == 111 and got[2].endswith(b": access denied\n")


@pytest.mark.skipif(not have_ref("supervise"), reason="daemontools not installed")
def test_reference_supervise(procs: Procs, tmp: Path) -> None:
    d = make_service(tmp / "s", "exec sleep 1000")
    sup = procs.start([ref("supervise"), str(d)])
    wait_for(lambda: run([ref("svok"), "s"], tmp)[0] == 0, what="supervise running")
    assert compare(tmp, "s") == (0, b"", b"")
    run([ref("svc"), "-dx", "s"], tmp)
    assert sup.wait(timeout=10) == 0
    assert compare(tmp, "s") == (100, b"", b"")
