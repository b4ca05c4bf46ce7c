# ruff: noqa: F811 (the daemon fixture imported from test_api is an argument here)
"""check_dtd: each state's exit code and status line, against a real dtd
(the socket) and against the reference supervise and runsv (the status
files, when no daemon answers); garbage and silence from a fake socket;
the threshold ranges; the command line."""

import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from dtd.clients.check_dtd import Range
from test_api import Daemon, call, daemon, start_with, up_pid  # noqa: F401  (daemon is a fixture)

from dtd import info, status

Result = tuple[int, str, str]
UPTIME = r" uptime_min=\d+\.\d{3}s;[^;]*;;0"


def check(*args: str, sock: Path | str | None = None) -> Result:
    argv = [ours("check_dtd"), *args]
    if sock is not None:
        argv += ["--socket", str(sock)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                       check=False)
    return p.returncode, p.stdout, p.stderr


def perf(total: int, up: int, down: int = 0, off: int = 0, paused: int = 0, not_ready: int = 0,
         warn: str = "", crit: str = "0") -> str:
    return (f"services={total};;;0 up={up};;;0;{total} down={down};{warn};{crit};0;{total}"
            f" off={off};;;0;{total} paused={paused};;;0;{total}"
            f" not_ready={not_ready};;;0;{total}")


def matches(result: Result, code: int, pattern: str) -> bool:
    rc, out, err = result
    return rc == code and err == "" and re.fullmatch(pattern, out) is not None


def failing(top: Path, name: str) -> Path:
    """A service that exits 1 at once, again and again."""
    return make_service(top / name, "exit 1")


# -- against dtd ---------------------------------------------------------------

def test_all_up_is_ok(daemon: Daemon) -> None:
    start_with(daemon, "a", "b")
    r = check(sock=daemon.sock)
    assert matches(r, 0, re.escape("DTD OK - 2 services up | " + perf(2, 2)) + UPTIME + "\n"), r
    # a logger is a service too. Its directory is made whole, then renamed
    # in: as svscan does, dtd looks for log/ once, when it first sees web
    staging = daemon.top / "staging"
    make_service(staging / "web", "exec sleep 1000")
    make_service(staging / "web" / "log", "exec cat >/dev/null")
    (staging / "web").rename(daemon.scan / "web")
    wait_for(lambda: up_pid(daemon.scan / "web" / "log"), what="web/log up")
    r = check(sock=daemon.sock)
    assert matches(r, 0, re.escape("DTD OK - 4 services up | " + perf(4, 4)) + UPTIME + "\n"), r


def test_down_and_wanted_down_is_ok_paused_is_warning(daemon: Daemon) -> None:
    start_with(daemon, "a", "b")
    status.send(str(daemon.scan / "b"), b"d")
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/b")[1]["state"] == "down", what="b down")
    r = check(sock=daemon.sock)
    assert matches(r, 0, re.escape("DTD OK - 1 service up, 1 down as wanted | "
                                   + perf(2, 1, off=1)) + UPTIME + "\n"), r
    status.send(str(daemon.scan / "a"), b"p")
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/a")[1]["paused"], what="a paused")
    r = check(sock=daemon.sock)
    assert matches(r, 1, re.escape("DTD WARNING - 1 of 2 services up; paused: a | "
                                   + perf(2, 1, off=1, paused=1)) + UPTIME + "\n"), r
    # only b asked about: down as wanted, nothing else counted
    r = check("-s", "b", sock=daemon.sock)
    assert r == (0, "DTD OK - 1 down as wanted | " + perf(1, 0, off=1) + "\n", "")


def held_down(d: Daemon, name: str) -> Path:
    """A service that exits 3 and that dtd's restart backoff then holds
    down for a minute: down, and wanted up, for as long as a test lasts."""
    path = make_service(d.scan / name, "exit 3")
    (path / "restart-backoff").write_text("60000 60000\n")
    wait_for(lambda: (r := call(d.sock, "GET", f"/v1/services/{name}"))[0] == 200
             and r[1]["backoff"] > 0 and r[1]["state"] == "down", what=f"{name} held down")
    return path


def test_down_while_wanted_up_is_critical(daemon: Daemon) -> None:
    start_with(daemon, "a")
    held_down(daemon, "bad1")
    held_down(daemon, "bad2")
    down = "down: bad1 (exit 3, backoff 60s), bad2 (exit 3, backoff 60s)"
    r = check(sock=daemon.sock)
    assert matches(r, 2, re.escape(f"DTD CRITICAL - 1 of 3 services up; {down} | "
                                   + perf(3, 1, down=2)) + UPTIME + "\n"), r
    # thresholds on that count: two down is a warning with -w 1 -c 2 ...
    r = check("-w", "1", "-c", "2", sock=daemon.sock)
    assert matches(r, 1, re.escape(f"DTD WARNING - 1 of 3 services up; {down} | "
                                   + perf(3, 1, down=2, warn="1", crit="2")) + UPTIME + "\n"), r
    # ... OK within both, though still named ...
    r = check("-w", "2", "-c", "5", sock=daemon.sock)
    assert matches(r, 0, re.escape(f"DTD OK - 1 of 3 services up; {down} | "
                                   + perf(3, 1, down=2, warn="2", crit="5")) + UPTIME + "\n"), r
    # ... and critical inside @2:3
    assert check("-c", "@2:3", sock=daemon.sock)[0] == 2
    assert check("-c", "@3:4", sock=daemon.sock)[0] == 0
    r = check("-s", "a", sock=daemon.sock)
    assert r[0] == 0 and r[1].startswith("DTD OK - 1 service up | ")


def test_in_finish_while_wanted_up_is_restarting(daemon: Daemon) -> None:
    fin = make_service(daemon.scan / "fin", "exit 0")
    (fin / "finish").write_text("#!/bin/sh\nexec sleep 1000\n")
    (fin / "finish").chmod(0o755)
    (fin / "timeout-finish").write_text("0\n")  # no limit: it stays in finish
    daemon.start()
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/fin")[1].get("state") == "finish",
             what="fin in finish")
    r = check("-s", "fin", sock=daemon.sock)
    assert r == (1, "DTD WARNING - 0 of 1 service up; restarting: fin | " + perf(1, 0) + "\n",
                 ""), r
    # asked down while it finishes: on its way down, as wanted
    status.send(str(fin), b"d")
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/fin")[1]["want"] == "down",
             what="fin wanted down")
    r = check("-s", "fin", sock=daemon.sock)
    assert r == (0, "DTD OK - 1 down as wanted | " + perf(1, 0, off=1) + "\n", ""), r


def test_a_service_with_notification_fd_is_held_to_readiness(daemon: Daemon) -> None:
    slow = make_service(daemon.scan / "slow", "until [ -e go ]; do sleep 0.05; done\n"
                        "echo >&5\nexec 5>&-\nexec sleep 1000")
    (slow / "notification-fd").write_text("5\n")
    make_service(daemon.scan / "plain", "exec sleep 1000")
    daemon.start()
    wait_for(lambda: up_pid(slow) and up_pid(daemon.scan / "plain"), what="both up")
    r = check(sock=daemon.sock)
    assert matches(r, 1, re.escape("DTD WARNING - 2 of 2 services up; not ready: slow | "
                                   + perf(2, 2, not_ready=1)) + UPTIME + "\n"), r
    # plain never says it is ready: only -r holds it to that
    r = check("-r", "-s", "plain", sock=daemon.sock)
    assert matches(r, 1, re.escape("DTD WARNING - 1 of 1 service up; not ready: plain | "
                                   + perf(1, 1, not_ready=1)) + UPTIME + "\n"), r
    (slow / "go").touch()
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/slow")[1]["ready"], what="ready")
    r = check(sock=daemon.sock)
    assert matches(r, 0, re.escape("DTD OK - 2 services up | " + perf(2, 2)) + UPTIME + "\n"), r
    # without the daemon, the info file our worker writes says the same
    gone = daemon.top / "nowhere.sock"
    (slow / "go").unlink()
    subprocess.run([ours("svc"), "-k", str(slow)], check=True)
    wait_for(lambda: (i := info.read(str(slow / info.INFO))) is not None and not i.ready
             and up_pid(slow), what="slow restarted, not ready")
    r = check("--scan", str(daemon.scan), sock=gone)
    assert matches(r, 1, re.escape("DTD WARNING - 2 of 2 services up; not ready: slow | "
                                   + perf(2, 2, not_ready=1)) + UPTIME + "\n"), r


def test_named_services_missing_is_critical_and_verbose_lists_each(daemon: Daemon) -> None:
    start_with(daemon, "a", "b")
    r = check("-s", "a,nope", "-s", "b", sock=daemon.sock)
    assert matches(r, 2, re.escape("DTD CRITICAL - 2 of 3 services up; missing: nope | "
                                   + perf(3, 2)) + UPTIME + "\n"), r
    code, out, _ = check("-v", "-s", "b", sock=daemon.sock)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert re.fullmatch(rf"b: up pid {up_pid(daemon.scan / 'b')}, \d+s, want up", lines[1]), lines


def test_a_recent_start_is_flapping(daemon: Daemon) -> None:
    start_with(daemon, "a")
    r = check("-u", "3600", sock=daemon.sock)
    assert matches(r, 1, re.escape("DTD WARNING - 1 of 1 service up; flapping: a (up ")
                   + r"\d+s\) \| " + re.escape(perf(1, 1))
                   + r" uptime_min=\d+\.\d{3}s;3600:;;0" + "\n"), r
    assert check("-u", "0.001", sock=daemon.sock)[0] == 0


def test_no_daemon_and_no_status_files_is_unknown(tmp: Path) -> None:
    scan = tmp / "service"
    make_service(scan / "a", "exec sleep 1000")  # never supervised
    gone = tmp / "nowhere.sock"
    r = check("--scan", str(scan), sock=gone)
    assert r == (3, f"DTD UNKNOWN - no daemon, and no status files under {scan}\n", "")
    r = check("--scan", str(tmp / "nothing"), sock=gone)
    assert r == (3, (f"DTD UNKNOWN - no daemon, and unable to read {tmp}/nothing: "
                     "file does not exist\n"), "")


# -- without a daemon: the reference supervisors' status files ----------------

needs_supervise = pytest.mark.skipif(not have_ref("supervise"), reason="no daemontools")


def supervised(procs: Procs, d: Path, supervisor: str = "supervise", up: bool = True) -> None:
    procs.start([ref(supervisor), str(d)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    wait_for(lambda: (d / "supervise" / "status").exists() and (up_pid(d) or not up),
             what=f"{d.name} supervised")


@needs_supervise
def test_fallback_reads_the_reference_supervise(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    gone = swept / "nowhere.sock"
    for n in ("a", "b"):
        supervised(procs, make_service(scan / n, "exec sleep 1000"))
    args = ("--scan", str(scan))
    r = check(*args, sock=gone)
    assert matches(r, 0, re.escape("DTD OK - 2 services up | " + perf(2, 2)) + UPTIME + "\n"), r
    subprocess.run([ref("svc"), "-d", str(scan / "b")], check=True)
    wait_for(lambda: up_pid(scan / "b") == 0, what="b down")
    r = check(*args, sock=gone)
    assert matches(r, 0, re.escape("DTD OK - 1 service up, 1 down as wanted | "
                                   + perf(2, 1, off=1)) + UPTIME + "\n"), r
    subprocess.run([ref("svc"), "-p", str(scan / "a")], check=True)
    wait_for(lambda: status.read(str(scan / "a")).paused, what="a paused")  # type: ignore[union-attr]
    r = check(*args, sock=gone)
    assert matches(r, 1, re.escape("DTD WARNING - 1 of 2 services up; paused: a | "
                                   + perf(2, 1, off=1, paused=1)) + UPTIME + "\n"), r
    subprocess.run([ref("svc"), "-c", str(scan / "a")], check=True)
    # daemontools writes no info file: -r cannot hold its services to readiness
    assert matches(check("-r", "-s", "a", *args, sock=gone), 0, r"DTD OK - 1 service up \| .*\n")
    # daemontools restarts at once and then sleeps its second: a service
    # that keeps failing looks up, for less than a second each time
    supervised(procs, failing(scan, "bad"))
    line = re.escape("DTD WARNING - 2 of 3 services up; flapping: bad (up 0s) | "
                     + perf(3, 2, off=1)) + r" uptime_min=0\.\d{3}s;5:;;0" + "\n"
    wait_for(lambda: matches(check("-u", "5", *args, sock=gone), 1, line), what="flapping")
    # a service whose supervisor is gone: nothing restarts it
    unwatched = make_service(scan / "c", "exec sleep 1000")
    p = procs.start([ref("supervise"), str(unwatched)], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: up_pid(unwatched), what="c up")
    subprocess.run([ref("svc"), "-dx", str(unwatched)], check=True)
    p.wait(timeout=10)
    r = check("-s", "c", *args, sock=gone)
    assert r == (2, "DTD CRITICAL - 0 of 1 service up; unsupervised: c | " + perf(1, 0) + "\n",
                 ""), r


@pytest.mark.skipif(not have_ref("runsv"), reason="no runit")
def test_fallback_reads_runsv(procs: Procs, swept: Path) -> None:
    scan = swept / "service"
    d = make_service(scan / "r", "exec sleep 1000")
    supervised(procs, d, "runsv")
    gone = swept / "nowhere.sock"
    r = check("--scan", str(scan), sock=gone)
    assert matches(r, 0, re.escape("DTD OK - 1 service up | " + perf(1, 1)) + UPTIME + "\n"), r
    subprocess.run([ref("sv"), "down", str(d)], check=True, capture_output=True)
    wait_for(lambda: up_pid(d) == 0, what="r down")
    assert check("--scan", str(scan), sock=gone) == (
        0, "DTD OK - 1 down as wanted | " + perf(1, 0, off=1) + "\n", "")
    # runsv waits its second with the service down: wanted up, and down
    supervised(procs, failing(scan, "bad"), "runsv", up=False)
    line = "DTD CRITICAL - 0 of 2 services up; down: bad | " + perf(2, 0, down=1, off=1) + "\n"
    wait_for(lambda: check("--scan", str(scan), sock=gone) == (2, line, ""), what="CRITICAL")


# -- a socket that answers nonsense --------------------------------------------

class FakeServer:
    """A Unix socket that answers every connection with the same bytes (or
    with nothing, holding the connection open, when answer is None)."""

    def __init__(self, path: Path, answer: bytes | None) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.answer is None:
                self.held.append(conn)
                continue
            conn.recv(65536)
            conn.sendall(self.answer)
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        for c in self.held:
            c.close()


@pytest.fixture
def fake(tmp: Path) -> Iterator[list[FakeServer]]:
    servers: list[FakeServer] = []
    yield servers
    for s in servers:
        s.close()


GARBAGE = [
    (b"hello\r\n", "DTD UNKNOWN - unable to talk to {sock}: bad answer b'hello\\r\\n'"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{nope",
     "DTD UNKNOWN - unexpected answer from dtd"),
    ((b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
      b'{"a": "list"}'), "DTD UNKNOWN - unexpected answer from dtd"),
    ((b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
      b'[{"name": "x"}]\n'), "DTD UNKNOWN - unexpected answer from dtd"),
    ((b"HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
      b'{"error": "oops"}'), "DTD UNKNOWN - dtd answered 500: oops"),
    (b"", "DTD UNKNOWN - unable to talk to {sock}: bad answer b''"),
]


@pytest.mark.parametrize("answer,expected", GARBAGE)
def test_garbage_from_the_socket_is_unknown(tmp: Path, fake: list[FakeServer], answer: bytes,
                                            expected: str) -> None:
    path = tmp / "fake.sock"
    fake.append(FakeServer(path, answer))
    r = check(sock=path)
    assert r == (3, expected.format(sock=path) + "\n", ""), r


def test_a_silent_socket_times_out_as_unknown(tmp: Path, fake: list[FakeServer]) -> None:
    path = tmp / "fake.sock"
    fake.append(FakeServer(path, None))
    r = check("-t", "0.5", sock=path)
    assert r == (3, "DTD UNKNOWN - no answer within 0.5s\n", "")


# -- the command line, the ranges -------------------------------------------------

def test_command_line() -> None:
    code, out, err = check("-c", "5:1")
    assert code == 3 and out == "DTD UNKNOWN - argument -c/--critical: not a range: 5:1\n"
    assert err.startswith("usage: check_dtd ")
    assert check("--bogus")[0] == 3
    assert check("-t", "-1")[0] == 3
    from dtd import __version__
    assert check("-V") == (0, f"check_dtd {__version__}\n", "")
    code, out, _ = check("-h")
    assert code == 0 and out.startswith("usage: check_dtd ")


@pytest.mark.parametrize("spec,alerting,quiet", [
    ("0", [1, 5, -1], [0]),
    ("10", [11, -1], [0, 10]),
    ("10:", [9, 0], [10, 1e9]),
    ("~:10", [11], [-1e9, 10]),
    ("10:20", [9, 21], [10, 15, 20]),
    ("@10:20", [10, 15, 20], [9, 21]),
])
def test_ranges_as_the_guidelines_define_them(spec: str, alerting: list[float],
                                              quiet: list[float]) -> None:
    r = Range(spec)
    assert [v for v in alerting if not r.alerts(v)] == []
    assert [v for v in quiet if r.alerts(v)] == []

