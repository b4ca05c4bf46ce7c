"""svc: our output, exit codes and control bytes against Debian's /usr/bin/svc.

The control FIFOs are real: either the test holds one open for reading and
reads back exactly what each svc wrote, or a real supervise (the reference's)
obeys them and we check what happened to the service.
"""

import os
import re
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from clienttools import Result, can_lose_dac, run, without_dac

pytestmark = pytest.mark.skipif(not have_ref("svc"), reason="daemontools not installed")


def both(cwd: Path, *args: str | bytes | Path) -> tuple[Result, Result]:
    return run([ref("svc"), *args], cwd), run([ours("svc"), *args], cwd)


def compare(cwd: Path, *args: str | bytes | Path) -> Result:
    want, got = both(cwd, *args)
    assert got == want, f"svc {args!r} differs\nreference: {want}\nours:      {got}"
    return got


# argv shapes for djb's getopt: clusters, repeats, "--", "--x", "-", options
# after an operand, illegal letters (first, middle, after a good cluster)
ARGV = [
    [],
    ["-u"],
    ["nodir"],
    ["-u", "nodir"],
    ["-udopchaitkx", "nodir"],
    ["-uu", "-d", "-u", "nodir"],
    ["-z"],
    ["-z", "nodir"],
    ["-uz", "nodir"],
    ["-u", "-q", "nodir"],
    ["-U", "nodir"],
    ["-1", "nodir"],
    ["-d-u", "nodir"],
    ["-u", "--", "nodir"],
    ["-u", "--", "-d", "nodir"],
    ["-u", "--x", "nodir"],
    ["--", "--", "nodir"],
    ["--foo", "nodir"],
    ["-u", "-", "-d", "nodir"],
    ["-"],
    ["nodir", "-u"],
    ["-u", "", "nodir"],
    ["-u", "nodir", "other", "nodir"],
    [b"-\xe9"],
    [b"-u", b"caf\xe9", b"new\nline"],
]


@pytest.mark.parametrize("argv", ARGV, ids=lambda a: repr(a))
def test_options_and_missing_directories(tmp: Path, argv: list[str | bytes]) -> None:
    compare(tmp, *argv)


def test_illegal_option_message_uses_the_program_name(tmp: Path) -> None:
    # djb's getopt prints the basename of argv[0]; run through a symlink
    (tmp / "bin").mkdir()
    (tmp / "bin" / "mysvc").symlink_to(ours("svc"))
    got = run([tmp / "bin" / "mysvc", "-uy"], tmp)
    assert got == (100, b"", b"mysvc: illegal option -- y\nsvc options: u up, d down, o once,"
                   b" x exit, p pause, c continue, h hup, a alarm, i interrupt, t term, k kill\n")


@pytest.fixture
def listener(tmp: Path) -> Iterator[Callable[[str | bytes], Path]]:
    """make(name): a service directory whose supervise/control this process
    reads, standing in for supervise."""
    held: list[int] = []

    def make(name: str | bytes) -> Path:
        d = tmp / os.fsdecode(name)
        (d / "supervise").mkdir(parents=True)
        os.mkfifo(d / "supervise" / "control", 0o600)
        held.append(os.open(d / "supervise" / "control", os.O_RDONLY | os.O_NONBLOCK))
        return d

    yield make
    for fd in held:
        os.close(fd)


def drain(d: Path) -> bytes:
    fd = os.open(d / "supervise" / "control", os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return data
            if not chunk:
                return data
            data += chunk
    finally:
        os.close(fd)


@pytest.mark.parametrize("argv", [
    [],
    ["-u"],
    ["-udopchaitkx"],
    ["-xkti", "-ahcp", "-od", "-u"],
    ["-dd", "-u", "-d", "-uuu"],
    ["-t", "--", "-k"],
], ids=lambda a: repr(a))
def test_bytes_written_to_control(listener: Callable[[str | bytes], Path], tmp: Path,
                                  argv: list[str]) -> None:
    d = listener("s")
    want = run([ref("svc"), *argv, "s"], tmp)
    want_bytes = drain(d)
    got = run([ours("svc"), *argv, "s"], tmp)
    got_bytes = drain(d)
    assert (got, got_bytes) == (want, want_bytes)


def test_every_directory_gets_the_commands(listener: Callable[[str | bytes], Path],
                                           tmp: Path) -> None:
    dirs = [listener(n) for n in ("a", "with space", b"caf\xe9", "new\nline")]
    args: list[str | bytes | Path] = ["-tu", "a", "nodir", "with space", b"caf\xe9", "new\nline", str(tmp / "a")]
    want = run([ref("svc"), *args], tmp)
    want_bytes = [drain(d) for d in dirs]
    got = run([ours("svc"), *args], tmp)
    got_bytes = [drain(d) for d in dirs]
    assert (got, got_bytes) == (want, want_bytes)
    assert got_bytes == [b"tutu", b"tu", b"tu", b"tu"]


def test_control_problems(tmp: Path) -> None:
    (tmp / "notrunning" / "supervise").mkdir(parents=True)
    os.mkfifo(tmp / "notrunning" / "supervise" / "control")
    (tmp / "nocontrol" / "supervise").mkdir(parents=True)
    (tmp / "nosupervise").mkdir()
    (tmp / "supfile").mkdir()
    (tmp / "supfile" / "supervise").touch()
    (tmp / "controldir" / "supervise" / "control").mkdir(parents=True)
    (tmp / "file").touch()
    (tmp / "loop").symlink_to("loop")
    names = ["notrunning", "nocontrol", "nosupervise", "supfile", "controldir", "file",
             "loop", "nodir"]
    for args in (["-d", *names], names):
        compare(tmp, *args)


def test_control_that_is_a_regular_file(tmp: Path) -> None:
    control = tmp / "s" / "supervise" / "control"
    control.parent.mkdir(parents=True)
    control.write_bytes(b"0123456789")
    want = run([ref("svc"), "-kdu", "s"], tmp), control.read_bytes()
    control.write_bytes(b"0123456789")
    got = run([ours("svc"), "-kdu", "s"], tmp), control.read_bytes()
    assert got == want


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
def test_access_denied(listener: Callable[[str | bytes], Path], tmp: Path) -> None:
    (tmp / "closed").mkdir(mode=0)
    d = listener("supclosed")
    (d / "supervise").chmod(0)
    d = listener("controlclosed")
    (d / "supervise" / "control").chmod(0)
    names = ["closed", "supclosed", "controlclosed"]
    want = run(without_dac([ref("svc"), "-u", *names]), tmp)
    got = run(without_dac([ours("svc"), "-u", *names]), tmp)
    assert got == want
    assert got[2].count(b"access denied") == 3
    (tmp / "xonly").mkdir(mode=0o100)
    want = run(without_dac([ref("svc"), "-u", "a"]), tmp / "xonly")
    got = run(without_dac([ours("svc"), "-u", "a"]), tmp / "xonly")
    assert got == want == (111, b"", b"svc: fatal: unable to open current directory: access denied\n")


# ---- our svc drives the reference supervise -----------------------------------

SIGNALS = """\
for s in HUP ALRM INT; do trap "echo $s >> ../sigs" $s; done
trap 'echo TERM >> ../sigs; kill $!; exit 0' TERM
echo $$ >> ../starts
while :; do sleep 1000 & wait $!; kill $! 2>/dev/null; done
"""


def svstat(d: Path) -> bytes:
    return run([ref("svstat"), d.name], d.parent)[1]


def pid_of(d: Path) -> int:
    m = re.match(rb"[^:]+: up \(pid (\d+)\)", svstat(d))
    return int(m.group(1)) if m else 0


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.skipif(not have_ref("supervise"), reason="daemontools not installed")
def test_our_svc_drives_the_reference_supervise(procs: Procs, tmp: Path) -> None:
    d = make_service(tmp / "s", SIGNALS)
    sup = procs.start([ref("supervise"), str(d)])

    def svc(*opts: str) -> None:
        assert run([ours("svc"), *opts, "s"], tmp) == (0, b"", b"")

    wait_for(lambda: lines(tmp / "starts"), what="first start")
    first = pid_of(d)
    assert first
    for opt, sig in (("-h", "HUP"), ("-a", "ALRM"), ("-i", "INT")):
        svc(opt)
        wait_for(lambda: sig in lines(tmp / "sigs"), what=f"{sig} delivered")

    svc("-p")
    wait_for(lambda: b", paused" in svstat(d), what="paused")
    # supervise announces the pause before it sends SIGSTOP
    wait_for(lambda: proc_state(first) == "T", what="service stopped")
    svc("-c")
    wait_for(lambda: b"paused" not in svstat(d), what="continued")

    svc("-t")
    wait_for(lambda: len(lines(tmp / "starts")) == 2, what="restart after TERM")
    assert "TERM" in lines(tmp / "sigs")

    svc("-d")
    wait_for(lambda: svstat(d).startswith(b"s: down "), what="down")
    assert svstat(d).endswith(b" seconds, normally up\n")
    svc("-u")
    wait_for(lambda: pid_of(d), what="up again")

    svc("-o")
    svc("-k")
    wait_for(lambda: svstat(d).startswith(b"s: down "), what="down after kill, run once")
    # not "want up": the run-once was obeyed and nothing restarts it
    assert svstat(d).endswith(b" seconds, normally up\n")
    assert len(lines(tmp / "starts")) == 3

    svc("-x")
    assert sup.wait(timeout=10) == 0
    assert svstat(d) == b"s: supervise not running\n"
    assert run([ours("svc"), "-u", "s"], tmp) == (
        0, b"", b"svc: warning: unable to control s: supervise not running\n")
