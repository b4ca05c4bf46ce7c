"""Interoperation with the C tools, both ways.

- the reference svc, svstat and svok drive our supervise, and the reference
  svstat and ours agree at every step;
- runit's sv (which needs the 20-byte status) gives the same answers on our
  supervise as on runit's own runsv;
- our svstat, svc and svok work on directories run by runsv;
- the reference svscan runs our supervise, found on PATH, for a log pair.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, Procs, have_ref, make_service, ours, ref, wait_for
from clienttools import Result, run
from dtd import status

pytestmark = pytest.mark.skipif(not have_ref("svstat"), reason="daemontools not installed")
needs_runit = pytest.mark.skipif(not (have_ref("sv") and have_ref("runsv")),
                                 reason="runit not installed")

QUIET = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

SIGNALS = """\
for s in HUP ALRM INT; do trap "echo $s >> ../sigs" $s; done
trap 'echo TERM >> ../sigs; kill $!; exit 0' TERM
echo $$ >> ../starts
while :; do sleep 1000 & wait $!; kill $! 2>/dev/null; done
"""


def same_svstat(cwd: Path, *names: str) -> bytes:
    """Our svstat's output, which must equal the reference's run just before
    or just after it (a second can tick in between)."""
    first = run([ref("svstat"), *names], cwd)
    got = run([ours("svstat"), *names], cwd)
    if got != first:
        second = run([ref("svstat"), *names], cwd)
        assert got == second, f"svstat differs\nreference: {second}\nours:      {got}"
    assert got[0] == 0 and got[2] == b""
    return got[1]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def start_ours(procs: Procs, d: Path) -> subprocess.Popen[bytes]:
    p = procs.start([ours("supervise"), str(d)], **QUIET)
    wait_for(lambda: run([ref("svok"), str(d)], d.parent)[0] == 0, what="our supervise running")
    return p


# ---- the reference clients drive our supervise -------------------------------

@pytest.mark.skipif(not have_ref("svc"), reason="daemontools not installed")
def test_reference_clients_drive_our_supervise(procs: Procs, tmp: Path) -> None:
    d = make_service(tmp / "s", SIGNALS)
    sup = start_ours(procs, d)

    def svc(opt: str) -> None:
        assert run([ref("svc"), opt, "s"], tmp) == (0, b"", b"")

    def stat() -> bytes:
        return run([ref("svstat"), "s"], tmp)[1]

    wait_for(lambda: lines(tmp / "starts"), what="first start")
    assert re.fullmatch(rb"s: up \(pid \d+\) \d+ seconds\n", same_svstat(tmp, "s"))
    assert (d / "supervise" / "status").stat().st_size == status.RUNIT_SIZE

    for opt, sig in (("-h", "HUP"), ("-a", "ALRM"), ("-i", "INT")):
        svc(opt)
        wait_for(lambda: sig in lines(tmp / "sigs"), what=f"{sig} delivered")
    svc("-p")
    wait_for(lambda: b", paused" in stat(), what="paused")
    same_svstat(tmp, "s")
    svc("-c")
    wait_for(lambda: b"paused" not in stat(), what="continued")
    svc("-t")
    wait_for(lambda: len(lines(tmp / "starts")) == 2, what="restart after TERM")
    svc("-d")
    wait_for(lambda: stat().startswith(b"s: down"), what="down")
    assert same_svstat(tmp, "s").endswith(b" seconds, normally up\n")
    (d / "down").touch()
    svc("-u")
    wait_for(lambda: b"up (pid" in stat(), what="up")
    assert same_svstat(tmp, "s").endswith(b" seconds, normally down\n")
    svc("-o")
    svc("-k")
    wait_for(lambda: stat().startswith(b"s: down"), what="down after kill, run once")
    assert same_svstat(tmp, "s").endswith(b" seconds\n")
    assert len(lines(tmp / "starts")) == 3
    assert run([ref("svok"), "s"], tmp) == (0, b"", b"")
    svc("-x")
    assert sup.wait(timeout=10) == 0
    assert same_svstat(tmp, "s") == b"s: supervise not running\n"
    assert run([ref("svok"), "s"], tmp) == (100, b"", b"")


# ---- runit's sv: the same answers from our supervise as from runsv ------------
#
# Left out on purpose, because runit's semantics differ from daemontools',
# which ours keeps: "sv once" (runsv then writes want 'd', daemontools 0, and
# sv -v waits for 'd'), "sv -v term" after a once (same byte), and "sv exit"
# (runsv stops the service first; supervise's x waits until it is down).

def mask(data: bytes) -> bytes:
    return re.sub(rb"\d+s\b", b"Ns", re.sub(rb"pid \d+", b"pid N", data))


def pid_of(d: Path) -> int:
    m = re.match(rb"[^:]+: up \(pid (\d+)\)", run([ref("svstat"), d.name], d.parent)[1])
    return int(m.group(1)) if m else 0


def sv_session(procs: Procs, d: Path, supervisor: list[str]) -> list[tuple[str, Result]]:
    """Drive a supervisor of d with sv; every answer, masked, with its command."""
    p = procs.start([*supervisor, str(d)], **QUIET)
    wait_for(lambda: b"(pid" in run([ref("svstat"), d.name], d.parent)[1], what="service up")
    out: list[tuple[str, Result]] = []

    def sv(*args: str) -> None:
        rc, o, e = run([ref("sv"), *args], d.parent)
        out.append((" ".join(args), (rc, mask(o), mask(e))))

    sv("status", "./s")
    sv("-v", "down", "./s")
    sv("status", "./s")
    sv("-v", "up", "./s")
    sv("pause", "./s")
    wait_for(lambda: b"paused" in run([ref("svstat"), d.name], d.parent)[1], what="paused")
    sv("status", "./s")
    sv("-v", "cont", "./s")
    before = pid_of(d)
    sv("-v", "term", "./s")
    # sv -v compares whole seconds, so it can say ok before the TERM is even
    # handled when the service started within the same second: wait for the
    # restart, and for runit's got-TERM byte to clear, before looking again
    wait_for(lambda: pid_of(d) not in (0, before), what="restart after term")
    wait_for(lambda: (d / "supervise" / "status").read_bytes()[18:19] == b"\0",
             what="got TERM cleared")
    sv("status", "./s", "./nonexistent")
    (d / "down").touch()
    sv("status", "./s")
    sv("-v", "down", "./s")
    sv("status", "./s")
    assert run([ours("svc"), "-x", d.name], d.parent) == (0, b"", b"")
    p.wait(timeout=10)
    sv("status", "./s")
    sv("up", "./s")
    return out


@needs_runit
@pytest.mark.slow
def test_runit_sv_on_our_supervise_answers_as_on_runsv(procs: Procs, tmp: Path) -> None:
    script = "exec sleep 1000"
    want = sv_session(procs, make_service(tmp / "runsv" / "s", script), [ref("runsv")])
    got = sv_session(procs, make_service(tmp / "ours" / "s", script), [ours("supervise")])
    for (cmd, w), (_, g) in zip(want, got):
        assert g == w, f"sv {cmd}: runsv gave {w}, our supervise gave {g}"
    assert want[0][1][1] == b"run: ./s: (pid N) Ns\n"


# ---- our clients on directories run by runsv ----------------------------------

@needs_runit
def test_our_clients_on_runsv(procs: Procs, tmp: Path) -> None:
    d = make_service(tmp / "s", "exec sleep 1000")
    p = procs.start([ref("runsv"), str(d)], **QUIET)
    wait_for(lambda: b"(pid" in run([ref("svstat"), "s"], tmp)[1], what="runsv: service up")
    assert (d / "supervise" / "status").stat().st_size == status.RUNIT_SIZE
    assert run([ours("svok"), "s"], tmp) == (0, b"", b"")
    assert re.fullmatch(rb"s: up \(pid \d+\) \d+ seconds\n", same_svstat(tmp, "s"))

    assert run([ours("svc"), "-p", "s"], tmp) == (0, b"", b"")
    wait_for(lambda: b"paused" in run([ref("svstat"), "s"], tmp)[1], what="paused")
    same_svstat(tmp, "s")
    assert run([ours("svc"), "-cd", "s"], tmp) == (0, b"", b"")
    wait_for(lambda: run([ref("svstat"), "s"], tmp)[1].startswith(b"s: down"), what="down")
    assert same_svstat(tmp, "s").endswith(b" seconds, normally up\n")
    assert mask(run([ref("sv"), "status", "./s"], tmp)[1]) == b"down: ./s: Ns, normally up\n"

    assert run([ours("svc"), "-x", "s"], tmp) == (0, b"", b"")
    p.wait(timeout=10)
    assert same_svstat(tmp, "s") == b"s: supervise not running\n"
    assert run([ours("svok"), "s"], tmp) == (100, b"", b"")


# ---- the reference svscan runs our supervise ----------------------------------

@pytest.mark.skipif(not have_ref("svscan"), reason="daemontools not installed")
def test_reference_svscan_runs_our_supervise_with_a_log(procs: Procs, tmp: Path) -> None:
    scan = tmp / "scan"
    out = tmp / "out"
    s = make_service(scan / "web", 'echo "started $$"\nexec sleep 1000')
    make_service(s / "log", f"exec cat >> '{out}'")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    procs.start([ref("svscan"), str(scan)], env=env, **QUIET)

    owners: dict[Path, int] = {}
    for d in (s, s / "log"):
        owner = wait_for(lambda: status.lock_owner(str(d)), what=f"{d} supervised")
        assert isinstance(owner, int)
        owners[d] = owner
        # the Python interpreter, not /usr/bin/supervise
        exe = os.readlink(f"/proc/{owners[d]}/exe")
        assert exe == os.path.realpath(sys.executable), exe
        if os.getpgid(owners[d]) != procs.started[-1].pid:
            procs.add_group(os.getpgid(owners[d]))

    wait_for(lambda: len(lines(out)) == 2, what="the first line in the log")
    first = lines(out)[1]
    assert run([ref("svc"), "-t", "web"], scan) == (0, b"", b"")
    wait_for(lambda: len(lines(out)) == 4, what="a line from the restarted service")
    assert lines(out)[::2] == ["started", "started"] and lines(out)[3] != first
    assert status.lock_owner(str(s / "log")) == owners[s / "log"]
    assert same_svstat(scan, "web", "web/log").count(b": up (pid ") == 2
