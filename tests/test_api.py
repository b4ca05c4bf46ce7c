"""The HTTP API on dtd's Unix socket: every endpoint through curl, errors,
authorization by peer credentials, malformed input that changes nothing,
events across a root killed and restarted, many subscribers, the socket
file's life."""

import asyncio
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Procs, make_service, ours, up_pid, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tooltools import testuser  # noqa: F401  (a fixture)

from dtd import info, status
from dtd.api import ApiServer
from dtd.model import Model

CURL = shutil.which("curl") or "/usr/bin/curl"
needs_curl = pytest.mark.skipif(not os.path.exists(CURL), reason="curl not installed")


# -- helpers shared with test_dtdctl ------------------------------------------

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("dtd", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock: Path, method: str, target: str, body: object = None) -> tuple[int, Any]:
    conn = UnixHTTP(str(sock))
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        conn.request(method, target, body=data)
        r = conn.getresponse()
        raw = r.read()
        if r.getheader("Content-Type", "").startswith("application/json"):
            return r.status, json.loads(raw)
        return r.status, raw
    finally:
        conn.close()


def connectable(sock: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(sock))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Daemon:
    def __init__(self, procs: Procs, top: Path, scan: Path, sock: Path) -> None:
        self.procs, self.top, self.scan, self.sock = procs, top, scan, sock
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        out = open(self.top / "root.out", "ab")
        self.proc = self.procs.start([ours("dtd"), "--scan", str(self.scan), "--socket", str(self.sock),
                                      *extra], stdout=out, stderr=out)
        out.close()
        wait_for(lambda: connectable(self.sock) or self.proc.poll() is not None,  # type: ignore[union-attr]
                 what="the socket")
        assert self.proc.poll() is None, (self.top / "root.out").read_text()
        return self.proc

    def service(self, name: str, script: str = "exec sleep 1000", down: bool = False,
                log: bool = False) -> Path:
        d = make_service(self.scan / name, script, down)
        if log:
            make_service(d / "log", "exec cat >/dev/null")
        return d

    def output(self) -> str:
        return (self.top / "root.out").read_text()


@pytest.fixture
def daemon(procs: Procs, swept: Path) -> Iterator[Daemon]:
    scan = swept / "service"
    scan.mkdir()
    yield Daemon(procs, swept, scan, swept / "run" / "dtd.sock")


def start_with(daemon: Daemon, *names: str) -> None:
    """Services named, all up, then the root and its socket."""
    for n in names:
        daemon.service(n, log=n == "web")
    daemon.start()
    for n in names:
        wait_for(lambda: up_pid(daemon.scan / n), what=f"{n} up")


def under_reference_supervise(daemon: Daemon, name: str) -> Path:
    """A service that daemontools' own supervise runs, started before the
    root, which adopts it: nothing but the test writes its supervise/info,
    so the values written there are the ones the APIs must show."""
    d = daemon.service(name)
    daemon.procs.start(["/usr/bin/supervise", str(d)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    wait_for(lambda: up_pid(d), what=f"{name} up under daemontools' supervise")
    return d


def write_info(d: Path, facts: info.Info) -> None:
    info.write(facts, str(d / info.INFO), str(d / info.INFO_NEW))


def release(fifo: Path) -> None:
    """Let a run blocked on fifo go on, once it has opened it to read (a
    writer without a reader is refused: ENXIO)."""
    fds: list[int] = []

    def opened() -> bool:
        try:
            fds.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True
    wait_for(opened, what=f"a reader of {fifo.name}")
    os.write(fds[0], b"go\n")
    os.close(fds[0])


class Subscriber:
    """A raw /v1/events reader, whose subscription is in place once the
    response's head has come."""

    def __init__(self, sock: Path) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(str(sock))
        self.s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: dtd\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.feed()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        self.events: list[dict[str, Any]] = []

    def feed(self) -> bool:
        data = self.s.recv(1 << 16)
        self.buf += data
        return bool(data)

    def parse(self) -> None:
        """Complete chunks into events."""
        while b"\r\n" in self.buf:
            size, rest = self.buf.split(b"\r\n", 1)
            n = int(size, 16)
            if len(rest) < n + 2:
                return
            for line in rest[:n].splitlines():
                self.events.append(json.loads(line))
            self.buf = rest[n + 2:]

    def until(self, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            self.parse()
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such event in {self.events!r}")
            self.s.settimeout(left)
            if not self.feed():
                raise AssertionError("stream closed")

    def close(self) -> None:
        self.s.close()


def went(name: str, state: str) -> Any:
    return lambda ev: ev["service"]["name"] == name and ev["service"]["state"] == state


# -- every endpoint through curl ----------------------------------------------

def curl(sock: Path, *args: str) -> tuple[int, bytes]:
    """(HTTP status, body) as curl got them."""
    p = subprocess.run([CURL, "-s", "--unix-socket", str(sock), "-w", "\n%{http_code}", *args],
                       capture_output=True, timeout=30)
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


@needs_curl
def test_every_endpoint_through_curl(daemon: Daemon, procs: Procs) -> None:
    start_with(daemon, "web", "db")
    wait_for(lambda: up_pid(daemon.scan / "web" / "log"), what="web/log up")
    code, body = curl(daemon.sock, "http://dtd/v1/services")
    assert code == 200
    listed = json.loads(body)
    assert [s["name"] for s in listed] == ["db", "web", "web/log"]
    web = listed[1]
    assert web["state"] == "up" and web["pid"] == up_pid(daemon.scan / "web")
    assert web["directory"] == str(daemon.scan / "web") and web["want"] == "up"
    assert web["supervised"] and web["normally_up"] and not web["paused"]
    # a logger's name has a slash: percent-encoded, or as it is
    for target in ("web%2Flog", "web%2flog", "web/log"):
        code, body = curl(daemon.sock, f"http://dtd/v1/services/{target}")
        assert code == 200 and json.loads(body)["name"] == "web/log"

    # the event stream, followed by curl itself
    ev = procs.start([CURL, "-sN", "--unix-socket", str(daemon.sock), "http://dtd/v1/events"],
                     stdout=subprocess.PIPE)
    code, body = curl(daemon.sock, "-X", "POST", "-d", '{"commands": "d"}',
                      "http://dtd/v1/services/db/control")
    assert code == 202 and json.loads(body) == {"service": "db", "commands": "d"}
    wait_for(lambda: up_pid(daemon.scan / "db") == 0, what="db down")
    st = status.read(str(daemon.scan / "db"))
    assert st is not None and st.want == status.WANT_DOWN
    code, body = curl(daemon.sock, "http://dtd/v1/services/db")
    assert json.loads(body)["state"] == "down" and json.loads(body)["want"] == "down"
    # curl subscribes in its own time: changes are made until it shows one
    assert ev.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(ev.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 10
    while not sel.select(0.2):
        assert time.monotonic() < deadline, "curl saw no event"
        code, _ = curl(daemon.sock, "-X", "POST", "-d", '{"commands": "u"}',
                       "http://dtd/v1/services/db/control")
        assert code == 202
    sel.close()
    line = ev.stdout.readline()
    event = json.loads(line)
    assert event["event"] == "changed" and event["service"]["name"] == "db"

    code, body = curl(daemon.sock, "http://dtd/metrics")
    assert code == 200
    text = body.decode()
    assert 'dtd_service_up{service="web/log"} 1' in text
    assert "# TYPE dtd_service_starts_total counter" in text
    assert f'dtd_build_info{{version="{__import__("dtd").__version__}"}} 1' in text


def test_metrics_format_and_label_escaping(daemon: Daemon) -> None:
    odd = 'we"ird\\name'
    daemon.service(odd)
    daemon.service("idle", down=True)
    daemon.start()
    wait_for(lambda: up_pid(daemon.scan / odd), what="odd up")
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/idle")[0] == 200, what="idle listed")
    code, raw = call(daemon.sock, "GET", "/metrics")
    assert code == 200
    text = raw.decode()
    label = 'service="we\\"ird\\\\name"'
    sample = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
        elif not line.startswith("# HELP "):
            assert sample.match(line), line
    assert families == {"dtd_service_up", "dtd_service_desired_up", "dtd_service_normally_up",
                        "dtd_service_paused", "dtd_service_state_change_timestamp_seconds",
                        "dtd_service_starts_total", "dtd_service_ready",
                        "dtd_service_ready_timestamp_seconds", "dtd_service_fails",
                        "dtd_service_backoff_seconds", "dtd_services", "dtd_build_info"}
    assert f"dtd_service_up{{{label}}} 1" in text
    assert 'dtd_service_up{service="idle"} 0' in text
    assert 'dtd_service_normally_up{service="idle"} 0' in text
    assert 'dtd_service_desired_up{service="idle"} 0' in text
    assert f"dtd_service_starts_total{{{label}}} 1" in text
    since = float(re.search(rf"dtd_service_state_change_timestamp_seconds\{{{re.escape(label)}\}} (\S+)",
                            text).group(1))  # type: ignore[union-attr]
    assert abs(since - time.time()) < 60
    assert 'dtd_services{state="up"} 1' in text and 'dtd_services{state="down"} 1' in text


@pytest.mark.skipif(not os.path.exists("/usr/bin/supervise"), reason="needs daemontools")
def test_worker_facts_in_json_events_and_metrics(daemon: Daemon) -> None:
    d = under_reference_supervise(daemon, "web")
    daemon.start()
    code, rec = call(daemon.sock, "GET", "/v1/services/web")
    assert code == 200 and rec["supervised"] and rec["pid"] == up_pid(d)
    # without an info file (daemontools' supervise writes none): the defaults
    assert {k: rec[k] for k in ("ready", "ready_since", "status_text", "exit_code",
                                "exit_signal", "fails", "backoff", "stopped")} == {
        "ready": False, "ready_since": 0.0, "status_text": "", "exit_code": None,
        "exit_signal": 0, "fails": 0, "backoff": 0.0, "stopped": False}
    sub = Subscriber(daemon.sock)
    t_ready = time.time()
    write_info(d, info.Info(ready=True, ready_since=t_ready, status_text="serving 3 clients",
                            exit_code=-1, exit_signal=9, fails=2, backoff=4.0))
    ev = sub.until(lambda e: e["service"]["name"] == "web" and e["service"]["ready"])
    assert ev["event"] == "changed"
    got = ev["service"]
    assert got["ready_since"] == pytest.approx(t_ready, abs=1e-6)
    assert (got["status_text"], got["exit_code"], got["exit_signal"], got["fails"],
            got["backoff"], got["stopped"]) == ("serving 3 clients", -1, 9, 2, 4.0, False)
    assert call(daemon.sock, "GET", "/v1/services/web")[1] == got
    assert call(daemon.sock, "GET", "/v1/services")[1] == [got]
    text = call(daemon.sock, "GET", "/metrics")[1].decode()
    assert 'dtd_service_ready{service="web"} 1\n' in text
    assert 'dtd_service_fails{service="web"} 2\n' in text
    assert 'dtd_service_backoff_seconds{service="web"} 4.0\n' in text
    stamp = re.search(r'^dtd_service_ready_timestamp_seconds\{service="web"\} (\S+)$', text, re.MULTILINE)
    assert stamp is not None and float(stamp.group(1)) == pytest.approx(t_ready, abs=1e-6)
    # each change is an event; readiness lost, stopped for good
    write_info(d, info.Info(exit_code=0, stopped=True))
    ev = sub.until(lambda e: e["service"]["name"] == "web" and e["service"]["stopped"])
    assert not ev["service"]["ready"] and ev["service"]["exit_code"] == 0
    assert ev["service"]["status_text"] == "" and ev["service"]["backoff"] == 0.0
    text = call(daemon.sock, "GET", "/metrics")[1].decode()
    assert 'dtd_service_ready{service="web"} 0\n' in text
    assert 'dtd_service_backoff_seconds{service="web"} 0.0\n' in text
    # an info file that is garbage is read as far as it parses, and the API stays up
    (d / "supervise" / "info.new").write_bytes(b"ready=1\nfails=x\n\xff\xfe=\0\nstatus_text=\xffok\n")
    os.rename(d / "supervise" / "info.new", d / "supervise" / "info")
    ev = sub.until(lambda e: e["service"]["name"] == "web"
                   and e["service"]["status_text"] == "\udcffok")
    assert ev["service"]["ready"] and ev["service"]["fails"] == 0
    assert call(daemon.sock, "GET", "/v1/services/web")[0] == 200
    sub.close()


# -- errors ---------------------------------------------------------------------

def raw(sock: Path, data: bytes, timeout: float = 10.0) -> bytes:
    """What the daemon answers to data sent whole, until it closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    out = b""
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass  # hung up on before all was sent: what came is the answer
    finally:
        s.close()
    return out


def test_errors_are_json_with_meaningful_codes(daemon: Daemon) -> None:
    start_with(daemon, "a")
    pid = up_pid(daemon.scan / "a")
    cases: list[tuple[str, str, object, int]] = [
        ("POST", "/v1/services/a/control", b"{not json", 400),
        ("POST", "/v1/services/a/control", {"commands": "dz"}, 400),
        ("POST", "/v1/services/a/control", {"commands": "q"}, 400),  # runit's, not svc's
        ("POST", "/v1/services/a/control", {"commands": ""}, 400),
        ("POST", "/v1/services/a/control", {"commands": 7}, 400),
        ("POST", "/v1/services/a/control", {"commands": "d", "more": 1}, 400),
        ("POST", "/v1/services/a/control", ["d"], 400),
        ("POST", "/v1/services/a/control", "\xff".encode("latin-1"), 400),
        ("POST", "/v1/services/nope/control", {"commands": "d"}, 404),
        ("GET", "/v1/services/nope", None, 404),
        ("GET", "/v1/services/..%2Fetc", None, 404),
        ("GET", "/v1/services/../etc", None, 404),
        ("GET", "/v1/services/", None, 404),
        ("GET", "/v1/services/" + "x" * 4096, None, 404),
        ("GET", "/v1/services/a%00b", None, 404),
        ("GET", "/v1/nothing", None, 404),
        ("GET", "/", None, 404),
        ("DELETE", "/v1/services", None, 405),
        ("PUT", "/v1/services/a", None, 405),
        ("GET", "/v1/services/a/control", None, 405),  # the control path takes POST only
        ("POST", "/metrics", b"", 405),
        ("BREW", "/v1/events", None, 405),
    ]
    for method, target, body, want in cases:
        code, answer = call(daemon.sock, method, target, body)
        assert code == want, (method, target, body, code, answer)
        assert isinstance(answer, dict) and isinstance(answer["error"], str), answer
    code, answer = call(daemon.sock, "DELETE", "/v1/services")
    # what is allowed is said
    conn = UnixHTTP(str(daemon.sock))
    conn.request("DELETE", "/v1/events")
    r = conn.getresponse()
    assert r.status == 405 and r.getheader("Allow") == "GET"
    conn.close()
    # oversized body, announced and sent
    code, answer = call(daemon.sock, "POST", "/v1/services/a/control", b'{"commands": "' + b"d" * 100000 + b'"}')
    assert code == 413
    # headers beyond the limit
    answer_raw = raw(daemon.sock, b"GET /v1/services HTTP/1.1\r\nHost: d\r\nX: " + b"y" * 40000 + b"\r\n\r\n")
    assert answer_raw.startswith(b"HTTP/1.1 431"), answer_raw[:100]
    # garbage and a NUL in the request line
    for junk in (b"\0\0\0\r\n\r\n", b"GET /v1/ser\0vices HTTP/1.1\r\nHost: d\r\n\r\n",
                 b"HELLO\r\n\r\n", b"GET /v1/services HTTP/1.1\r\n\r\n"):  # no Host
        assert raw(daemon.sock, junk).startswith(b"HTTP/1.1 400"), junk
    # nothing of all that touched the service
    assert up_pid(daemon.scan / "a") == pid
    assert call(daemon.sock, "GET", "/v1/services/a")[1]["state"] == "up"


def test_supervise_not_running_is_503(daemon: Daemon) -> None:
    start_with(daemon, "a")
    # a worker that exits stays gone for the second the root waits between
    # starts; during it control is answered "not running"
    d = daemon.scan / "a"
    status.send(str(d), b"dx")
    wait_for(lambda: not status.supervise_running(str(d)), what="worker gone")
    code, answer = call(daemon.sock, "POST", "/v1/services/a/control", {"commands": "u"})
    if code == 202:  # the new worker was quicker than us
        assert status.supervise_running(str(d))
    else:
        assert code == 503 and answer == {"error": "supervise not running"}


def test_keep_alive_and_pipelined_requests(daemon: Daemon) -> None:
    start_with(daemon, "a")
    conn = UnixHTTP(str(daemon.sock))
    for target in ("/v1/services", "/v1/services/a", "/nope", "/metrics", "/v1/services/a"):
        conn.request("GET", target)
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 404)
    conn.close()
    out = raw(daemon.sock, b"GET /v1/services/a HTTP/1.1\r\nHost: d\r\n\r\n" * 3
              + b"GET /v1/services/a HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 4


class FakeRoot:
    """What the adapter uses of the root: its model and send()."""

    def __init__(self, scan: str) -> None:
        self.model = Model(scan)
        self.sent: list[tuple[str, bytes]] = []

    def warn(self, *parts: str) -> None:
        raise AssertionError("".join(parts))

    def send(self, name: str, commands: bytes) -> None:
        if self.model.get(name) is None:
            raise KeyError(name)
        self.sent.append((name, commands))


def test_idle_clients_are_dropped_and_others_served(tmp: Path) -> None:
    """In process, with the idle timeout lowered: a client that sends
    nothing is hung up on, one that stops half way gets 408, and neither
    holds up a third."""
    path = str(tmp / "s" / "dtd.sock")

    async def scenario() -> None:
        server = ApiServer(path)
        server.idle_timeout = 0.3
        root = FakeRoot(str(tmp))
        root.model.update("a", str(tmp / "a"), None, True, True)
        await server.start(root)
        try:
            silent = await asyncio.open_unix_connection(path)
            half = await asyncio.open_unix_connection(path)
            half[1].write(b"GET /v1/services HTTP/1.1\r\nHo")
            await half[1].drain()
            busy = await asyncio.open_unix_connection(path)
            busy[1].write(b"GET /v1/services/a HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(busy[0].read(), 5)
            assert answer.startswith(b"HTTP/1.1 200 OK")
            t0 = time.monotonic()
            assert await asyncio.wait_for(silent[0].read(), 5) == b""
            assert 0.2 < time.monotonic() - t0 < 3
            late = await asyncio.wait_for(half[0].read(), 5)
            assert late.startswith(b"HTTP/1.1 408"), late
            for _, w in (silent, half, busy):
                w.close()
            # control goes through the root with the letters given
            c = await asyncio.open_unix_connection(path)
            body = b'{"commands": "dx"}'
            c[1].write(b"POST /v1/services/a/control HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n"
                       b"Connection: close\r\n\r\n%s" % (len(body), body))
            assert (await asyncio.wait_for(c[0].read(), 5)).startswith(b"HTTP/1.1 202")
            c[1].close()
            assert root.sent == [("a", b"dx")]
        finally:
            await server.stop()
        assert not os.path.exists(path)  # removed at exit

    asyncio.run(scenario())


def test_clients_beyond_the_limit_are_turned_away(tmp: Path) -> None:
    path = str(tmp / "dtd.sock")

    async def scenario() -> None:
        server = ApiServer(path)
        server.max_clients = 2
        root = FakeRoot(str(tmp))
        await server.start(root)
        try:
            held = [await asyncio.open_unix_connection(path) for _ in range(2)]
            extra = await asyncio.open_unix_connection(path)
            answer = await asyncio.wait_for(extra[0].read(), 5)
            head, body = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 503 ") and json.loads(body) == {"error": "too many clients"}
            extra[1].close()
            held[0][1].close()
            # once one has gone, a new one is served
            async def served() -> bytes:
                r, w = await asyncio.open_unix_connection(path)
                w.write(b"GET /v1/services HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                out = await r.read()
                w.close()
                return out
            deadline = time.monotonic() + 5
            while not (out := await served()).startswith(b"HTTP/1.1 200"):
                assert time.monotonic() < deadline, out
                await asyncio.sleep(0.01)
            held[1][1].close()
        finally:
            await server.stop()

    asyncio.run(scenario())


@pytest.mark.slow
def test_silent_clients_of_the_real_daemon_are_dropped(daemon: Daemon) -> None:
    """With dtd's own idle timeout (5 s): meanwhile others are served."""
    start_with(daemon, "a")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for s in (silent, half):
        s.settimeout(15)
        s.connect(str(daemon.sock))
    half.sendall(b"POST /v1/services/a/control HTTP/1.1\r\nHost: d\r\nContent-Length: 20\r\n\r\n{")
    t0 = time.monotonic()
    for _ in range(20):
        assert call(daemon.sock, "GET", "/v1/services/a")[0] == 200
    assert silent.recv(100) == b""
    answer = half.recv(1000)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 4 < time.monotonic() - t0 < 10
    silent.close()
    half.close()
    assert call(daemon.sock, "GET", "/v1/services/a")[1]["want"] == "up"


# -- bad input in bulk: the daemon keeps serving and nothing changes ----------

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "BREW", "get", "", "G\0T"])
TARGETS = st.one_of(
    st.sampled_from(["/v1/services", "/v1/services/a", "/v1/services/a/control", "/v1/events",
                     "/metrics", "/v1/services/../etc", "/v1/services/%00", "*", "", "/v1/services/a%2"]),
    st.text(max_size=40).map(lambda t: "/v1/services/" + t),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
BODIES = st.one_of(
    st.just(""), st.text(max_size=60),
    st.fixed_dictionaries({"commands": st.text(max_size=6)}).map(json.dumps),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                 max_leaves=6).map(json.dumps),
)
HEADERS = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=3)


def request_bytes(method: str, target: str, body: str, headers: list[tuple[str, str]],
                  version: str, length: str | None) -> bytes:
    b = body.encode("utf-8", "surrogatepass")
    head = f"{method} {target} {version}\r\nHost: dtd\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(b) if length is None else length}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + b


REQUESTS = st.builds(request_bytes, METHODS, TARGETS, BODIES, HEADERS,
                     st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", "HTTP/1.1x"]),
                     st.one_of(st.none(), st.sampled_from(["-1", "abc", "99999999", "0", "1 1"])))
JUNK = st.one_of(REQUESTS, st.binary(max_size=200),
                 REQUESTS.flatmap(lambda r: st.integers(0, len(r)).map(lambda n: r[:n])))


@pytest.mark.slow
def test_ten_thousand_malformed_requests_change_nothing(daemon: Daemon) -> None:
    start_with(daemon, "a")
    d = daemon.scan / "a"
    pid = up_pid(d)
    before = status.read(str(d))
    sent = [0]
    answered: dict[int, int] = {}

    @settings(max_examples=1000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(JUNK, min_size=10, max_size=10))
    def fuzz(batch: list[bytes]) -> None:
        for data in batch:
            # a request that is valid control would change the service: the
            # peer is root here, so such bytes are turned into a read
            data = data.replace(b"control", b"contro1")
            out = raw(daemon.sock, data, timeout=10)
            sent[0] += 1
            m = re.match(rb"HTTP/1\.[01] (\d{3})", out)
            code = int(m.group(1)) if m else 0
            answered[code] = answered.get(code, 0) + 1
            assert code != 500, (data, out)
            if code >= 400 and not data.startswith(b"HEAD "):  # HEAD's answer has no body
                # the first answer only: a body may have been taken for a
                # second, pipelined request
                head, rest = out.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                assert "error" in json.loads(rest[:length]), (data, out)

    fuzz()
    assert sent[0] >= 10000
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert up_pid(d) == pid and status.read(str(d)) == before
    assert call(daemon.sock, "GET", "/v1/services/a")[1]["pid"] == pid
    # bad requests are refused; some junk is valid GETs, some gets nothing
    assert answered.get(400, 0) > 1000, answered


# -- authorization ----------------------------------------------------------------

@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temp dir any user can traverse (pytest's is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="dtd-api-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_curl
@pytest.mark.root
def test_other_users_may_read_but_not_control(procs: Procs, swept: Path, open_dir: Path,
                                              testuser: Any) -> None:  # noqa: F811
    scan = swept / "service"
    scan.mkdir()
    d = Daemon(procs, swept, scan, open_dir / "run" / "dtd.sock")
    start_with(d, "a")
    pid = up_pid(scan / "a")
    mode = stat.S_IMODE(os.stat(d.sock).st_mode)
    assert mode == 0o666
    as_user = ["/usr/bin/setpriv", f"--reuid={testuser.pw_uid}", f"--regid={testuser.pw_gid}",
               "--clear-groups", CURL, "-s", "--unix-socket", str(d.sock), "-w", "\n%{http_code}"]
    p = subprocess.run([*as_user, "http://dtd/v1/services/a"], capture_output=True, timeout=30)
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"200" and json.loads(body)["pid"] == pid
    p = subprocess.run([*as_user, "-X", "POST", "-d", '{"commands": "k"}',
                        "http://dtd/v1/services/a/control"], capture_output=True, timeout=30)
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"403", p
    assert json.loads(body) == {"error": "not allowed to control services"}
    assert up_pid(scan / "a") == pid
    # the daemon's own user (root here) may
    assert call(d.sock, "POST", "/v1/services/a/control", {"commands": "d"})[0] == 202
    wait_for(lambda: up_pid(scan / "a") == 0, what="a down")


@pytest.mark.root
def test_socket_mode_and_group(daemon: Daemon) -> None:
    daemon.start("--socket-mode", "0660", "--socket-group", "0")
    st_ = os.stat(daemon.sock)
    assert stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_gid == 0
    assert stat.S_IMODE(os.stat(daemon.sock.parent).st_mode) == 0o755


# -- the socket file's life -------------------------------------------------------

def test_stale_socket_replaced_live_one_refused_removed_at_exit(daemon: Daemon, procs: Procs) -> None:
    daemon.sock.parent.mkdir()
    # a socket file nobody listens on, as a killed dtd leaves it
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(daemon.sock))
    s.close()
    root = daemon.start()
    assert call(daemon.sock, "GET", "/v1/services")[0] == 200
    # a second dtd on the same socket refuses to start
    other = daemon.top / "other"
    other.mkdir()
    p = subprocess.run([ours("dtd"), "--scan", str(other), "--socket", str(daemon.sock)],
                       capture_output=True, timeout=30)
    assert p.returncode == 111
    assert p.stderr == f"dtd: fatal: unable to listen on {daemon.sock}: another dtd is listening\n".encode()
    assert call(daemon.sock, "GET", "/v1/services")[0] == 200
    # something that is not a socket is left alone
    p = subprocess.run([ours("dtd"), "--scan", str(other), "--socket", str(daemon.top / "root.out")],
                       capture_output=True, timeout=30)
    assert p.returncode == 111
    assert p.stderr == f"dtd: fatal: unable to listen on {daemon.top / 'root.out'}: file already exists\n".encode()
    assert (daemon.top / "root.out").exists()
    root.send_signal(signal.SIGTERM)
    root.wait(timeout=30)
    assert not daemon.sock.exists()
    # none: no socket at all
    p2 = procs.start([ours("dtd"), "--scan", str(daemon.scan), "--socket", "none"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    make_service(daemon.scan / "late", "exec sleep 1000")
    wait_for(lambda: up_pid(daemon.scan / "late"), what="late up under a socketless root")
    assert not daemon.sock.exists()
    p2.send_signal(signal.SIGTERM)
    p2.wait(timeout=30)


# -- events ---------------------------------------------------------------------

def test_events_after_svc_and_after_the_root_was_killed(daemon: Daemon) -> None:
    start_with(daemon, "a", "b")
    sub = Subscriber(daemon.sock)
    subprocess.run([ours("svc"), "-d", str(daemon.scan / "a")], check=True, timeout=30)
    ev = sub.until(went("a", "down"))
    assert ev["event"] == "changed" and ev["service"]["want"] == "down" and ev["service"]["pid"] == 0
    sub.close()
    # the root dies; its workers stay and the new root adopts them
    assert daemon.proc is not None
    worker = status.lock_owner(str(daemon.scan / "b"))
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=30)
    daemon.start()  # over the stale socket file
    assert status.lock_owner(str(daemon.scan / "b")) == worker
    sub = Subscriber(daemon.sock)
    subprocess.run([ours("svc"), "-d", str(daemon.scan / "b")], check=True, timeout=30)
    ev = sub.until(went("b", "down"))
    assert ev["service"]["supervised"]
    subprocess.run([ours("svc"), "-u", str(daemon.scan / "a")], check=True, timeout=30)
    sub.until(went("a", "up"))
    # a service that appears is announced
    daemon.service("c")
    sub.until(lambda e: e["event"] == "added" and e["service"]["name"] == "c")
    sub.close()


@pytest.mark.slow
def test_thousand_services_hundred_subscribers_each_see_every_event(daemon: Daemon) -> None:
    n = 1000
    names = [f"s{i:03}" for i in range(n)]
    for name in names:
        daemon.service(name)
    daemon.start()
    wait_for(lambda: all(up_pid(daemon.scan / x) for x in names), timeout=60, what="all up")
    subs = [Subscriber(daemon.sock) for _ in range(100)]
    for name in names:
        status.send(str(daemon.scan / name), b"d")
    sel = selectors.DefaultSelector()
    for s in subs:
        s.s.setblocking(False)
        sel.register(s.s, selectors.EVENT_READ, s)
    want = set(names)
    deadline = time.monotonic() + 60

    def downs(s: Subscriber) -> set[str]:
        return {e["service"]["name"] for e in s.events if e["service"]["state"] == "down"}

    pending = set(range(len(subs)))
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            s = key.data
            s.feed()
            s.parse()
        pending = {i for i in pending if downs(subs[i]) != want}
    assert not pending, f"{len(pending)} subscribers missed events"
    # and every one saw the same events in the same order
    first = [json.dumps(e, sort_keys=True) for e in subs[0].events]
    for s in subs[1:]:
        assert [json.dumps(e, sort_keys=True) for e in s.events[:len(first)]] == first[:len(s.events)]
    sel.close()
    for s in subs:
        s.close()
    assert call(daemon.sock, "GET", "/v1/services")[0] == 200
