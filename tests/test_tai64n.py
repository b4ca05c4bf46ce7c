"""tai64n against Debian's /usr/bin/tai64n: the same lines with the stamps
masked, stamps that tell the time, streaming through a pipe, exit codes."""

import os
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Procs, have_ref, ours, ref
from dtd import tai64
from dtd.log.tai64n import stamp
from tooltools import compare, run

pytestmark = pytest.mark.skipif(not have_ref("tai64n"), reason="daemontools not installed")

STAMP = re.compile(rb"^@[0-9a-f]{24} ", re.MULTILINE)


def masked(out: bytes) -> bytes:
    return STAMP.sub(b"@STAMP ", out)


def both_masked(data: bytes) -> tuple[bytes, bytes]:
    want = run([ref("tai64n")], stdin=data)
    got = run([ours("tai64n")], stdin=data)
    assert got[0] == want[0] == 0 and got[2] == want[2] == b""
    return masked(want[1]), masked(got[1])


@pytest.mark.parametrize("data", [
    b"", b"\n", b"\n\n\n", b"one\n", b"one\ntwo\n", b"no newline", b"a\nb", b"\0\r\n\xff\n",
    b"x" * 1023 + b"\n" + b"y" * 1025 + b"\n", b"z" * 200000 + b"\nend",
    b"@4000000037c219bf2ef02e94 already stamped\n",
])
def test_lines(data: bytes) -> None:
    want, got = both_masked(data)
    assert got == want


def test_many_lines_of_every_length() -> None:
    data = b"".join(b"%d %s\n" % (i, b"x" * (i % 3000)) for i in range(3000))
    want, got = both_masked(data)
    assert got == want and got.count(b"@STAMP ") == 3000


def test_stamps_tell_the_time() -> None:
    before = tai64.now()
    out = run([ours("tai64n")], stdin=b"a\nb\nc\n")[1]
    after = tai64.now()
    labels = [tai64.from_hex(line[:25].decode()) for line in out.splitlines()]
    assert all(label is not None and before <= label <= after for label in labels)
    assert all(tai64.unpack(label)[1] < 10**9 for label in labels if label)
    assert labels == sorted(labels)  # type: ignore[type-var]


def read_until(fd: int, want: int, timeout: float = 10.0) -> bytes:
    """Read from fd until want bytes came, waiting at most timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {data!r} arrived"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"end of output after {data!r}"
            data += chunk
    return data


@pytest.mark.parametrize("which", ["ref", "ours"])
def test_streams(procs: Procs, which: str) -> None:
    """A line comes out while the input stays open; so does a partial one."""
    prog = ref("tai64n") if which == "ref" else ours("tai64n")
    p = procs.start([prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdin and p.stdout
    out = p.stdout.fileno()
    p.stdin.write(b"first\n")
    p.stdin.flush()
    assert masked(read_until(out, 32)) == b"@STAMP first\n"
    p.stdin.write(b"part")
    p.stdin.flush()
    assert masked(read_until(out, 29)) == b"@STAMP part"
    p.stdin.write(b"ial\nnext\n")
    p.stdin.flush()
    assert masked(read_until(out, 35)) == b"ial\n@STAMP next\n"
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_exit_codes() -> None:
    # a read error (stdin closed: EBADF) is 111, in silence. Not tested with
    # a directory on stdin: the Python interpreter refuses to start with one
    assert compare("tai64n", [], preexec=lambda: os.close(0)) == (111, b"", b"")
    # a closed output pipe: SIGPIPE, as for the reference
    for cmd in (ref("tai64n"), ours("tai64n")):
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run([cmd], input=b"x\n", stdout=w, stderr=subprocess.PIPE, timeout=30)
        os.close(w)
        assert p.returncode == -13, cmd


def test_arguments_are_ignored() -> None:
    compare("tai64n", ["-x", "y"])


def test_stamp_function() -> None:
    label = b"@L "
    assert stamp(b"a\nb\n", True, label) == b"@L a\n@L b\n"
    assert stamp(b"a\nb", False, label) == b"a\n@L b"
    assert stamp(b"\n", False, label) == b"\n"
