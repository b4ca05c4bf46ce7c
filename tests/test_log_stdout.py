"""dtd --log-stdout: the lines of services without a logger on dtd's
standard output as ``NAME: line``, whole, not mixed, none lost across a
SIGKILL of the root; services with a log/ keep their logger."""

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Procs, make_service, ours, processes_under, up_pid, wait_for

from dtd import status


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_root(procs: Procs, scan: Path, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "ab") as f, open(scan.parent / "root.err", "ab") as err:
        return procs.start([ours("dtd"), "--scan", str(scan), "--socket", "none", "--bus", "none",
                            "--log-stdout"], stdout=f, stderr=err)


def writer(count: int, pause: str = "") -> str:
    """./run numbering its lines "PID N", N = 1, 2, 3..., then waiting."""
    return (f'i=0\nwhile [ $i -lt {count} ]; do i=$((i+1)); echo "$$ $i"; {pause} done\n'
            "exec sleep 1000")


LINE = re.compile(rb"([a-z]+): (\d+) (\d+)")


def sequences(text: bytes) -> dict[bytes, list[int]]:
    """The numbers of each (service, pid), in order; every line must be
    exactly one service's line with its own prefix."""
    seen: dict[bytes, list[int]] = {}
    for line in text.split(b"\n")[:-1]:
        m = LINE.fullmatch(line)
        assert m, f"a mixed or unprefixed line: {line[:200]!r}"
        seen.setdefault(m[1] + b" " + m[2], []).append(int(m[3]))
    return seen


def test_lines_of_two_services_come_whole_with_their_prefix(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    make_service(scan / "alpha", writer(20000))
    make_service(scan / "beta", writer(20000))
    logged = make_service(scan / "gamma", writer(100))
    make_service(logged / "log", "exec cat > ../out")
    out = swept / "stdout"
    root = start_root(procs, scan, out)
    wait_for(lambda: out.read_bytes().count(b" 20000\n") == 2, timeout=30, what="both writers done")
    seen = sequences(out.read_bytes())
    assert sorted(k.split()[0] for k in seen) == [b"alpha", b"beta"]
    for numbers in seen.values():
        assert numbers == list(range(1, 20001))
    # a service with a logger: its lines go there, unprefixed, not to dtd's output
    wait_for(lambda: (logged / "out").exists() and (logged / "out").read_bytes().count(b"\n") == 100)
    assert re.fullmatch(rb"(\d+ \d+\n){100}", (logged / "out").read_bytes())
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0


@pytest.mark.slow
def test_no_line_lost_when_the_root_is_killed_and_restarted(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    a = make_service(scan / "a", writer(1000000, "sleep 0.0005;"))
    b = make_service(scan / "b", writer(1000000, "sleep 0.0005;"))
    out = swept / "stdout"
    root = start_root(procs, scan, out)
    runs = {d: wait_for(lambda: up_pid(d)) for d in (a, b)}
    wait_for(lambda: out.stat().st_size > 20000, what="some output")
    root.send_signal(signal.SIGKILL)
    root.wait()
    # without a root the services go on writing into their pipes
    worker = status.lock_owner(str(a))
    assert worker
    pipe = os.readlink(f"/proc/{worker}/fd/1")
    assert os.readlink(f"/proc/{worker}/fd/3") == pipe
    # the read end the worker keeps is not handed to ./run
    run_fds = {fd: os.readlink(f"/proc/{runs[a]}/fd/{fd}") for fd in os.listdir(f"/proc/{runs[a]}/fd")}
    assert [fd for fd, t in run_fds.items() if t == pipe] == ["1"]
    size = out.stat().st_size
    root = start_root(procs, scan, out)
    wait_for(lambda: out.stat().st_size > size + 20000, what="output from the new root")
    assert {d: up_pid(d) for d in (a, b)} == runs  # adopted, not restarted
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0
    wait_for(lambda: processes_under(scan) == [], what="everything gone")
    seen = sequences(out.read_bytes())
    assert len(seen) == 2
    for key, numbers in seen.items():
        # no number missing; the lines of the last write before the kill
        # may come twice, never more than a pipe's worth
        assert sorted(set(numbers)) == list(range(1, max(numbers) + 1)), key
        assert len(numbers) - len(set(numbers)) < 65536 // 8
        assert max(numbers) > 1000


def test_an_unfinished_line_survives_a_root_sigkill(procs: Procs, swept: Path) -> None:
    """The first half of a line is still in the pipe, not in a dead root's
    memory: the next root writes the line whole once its newline comes."""
    scan = swept / "service"
    fifo = swept / "fifo"
    os.mkfifo(fifo)
    d = make_service(scan / "half", f"echo before\nprintf 'first half, '\nread x < {fifo}\n"
                     "echo 'second half'\nexec sleep 1000")
    out = swept / "stdout"
    root = start_root(procs, scan, out)
    wait_for(lambda: out.read_bytes() == b"half: before\n", what="the first line")
    # the run waits on the FIFO: the half line is written, and waits in the pipe
    wait_for(lambda: pipe_holds(d) == len(b"first half, "), what="the half line in the pipe")
    root.send_signal(signal.SIGKILL)
    root.wait()
    root = start_root(procs, scan, out)
    with open(fifo, "wb") as f:
        f.write(b"go\n")
    wait_for(lambda: out.read_bytes() == b"half: before\nhalf: first half, second half\n",
             what="the line whole")
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0


def pipe_holds(d: Path) -> int:
    """Bytes waiting in the pipe of d's output, seen through its worker."""
    import array
    import fcntl
    import termios
    worker = status.lock_owner(str(d))
    fd = os.open(f"/proc/{worker}/fd/3", os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        return buf[0]
    finally:
        os.close(fd)


def test_a_long_line_and_an_unfinished_last_line(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    size = 300 * 1024  # more than a pipe holds
    long = make_service(scan / "long", f"head -c {size} /dev/zero | tr '\\0' x\necho\n"
                        "printf 'last words'\nexec sleep 1000", down=True)
    make_service(scan / "chatty", writer(1000000, "sleep 0.001;"))
    out = swept / "stdout"
    root = start_root(procs, scan, out)
    wait_for(lambda: b"chatty: " in out.read_bytes(), what="chatty")
    subprocess.run([ours("svc"), "-o", str(long)], check=True)
    wait_for(lambda: up_pid(long), what="long up")
    # the unfinished line is held in the pipe while ./run lives...
    wait_for(lambda: b"long: x" in out.read_bytes(), what="the long line")
    wait_for(lambda: comm(up_pid(long)) == "sleep", what="all of it written")
    subprocess.run([ours("svc"), "-k", str(long)], check=True)
    # ...and comes out, with a newline, once it is gone
    wait_for(lambda: b"long: last words\n" in out.read_bytes(), what="the last line")
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0
    lines = out.read_bytes().split(b"\n")
    assert lines.pop() == b""
    assert lines.count(b"long: " + b"x" * size) == 1
    assert lines.count(b"long: last words") == 1
    rest = [line for line in lines if not line.startswith(b"long: ")]
    assert len(rest) == len(lines) - 2
    numbers = sequences(b"\n".join(rest) + b"\n")
    assert len(numbers) == 1
    assert next(iter(numbers.values())) == list(range(1, len(rest) + 1))


@pytest.mark.parametrize("name", ["with space", "new\nline"])
def test_the_prefix_is_one_line(procs: Procs, swept: Path, name: str) -> None:
    scan = swept / "service"
    make_service(scan / name, "echo hello\nexec sleep 1000")
    out = swept / "stdout"
    root = start_root(procs, scan, out)
    prefix = name.replace("\n", "\\n").encode()
    wait_for(lambda: out.read_bytes() == prefix + b": hello\n", what="the line")
    root.send_signal(signal.SIGTERM)
    assert root.wait(timeout=15) == 0
