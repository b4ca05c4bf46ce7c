"""Figures of dtd's socket API (issue 4), with supervisord's XML-RPC and
supervisorctl beside them where there is something to compare:

- status of all 100 services through the API, the client already connected
  (supervisord: getAllProcessInfo over its Unix socket, connected too);
- `dtdctl status` of 100 services, the whole process (`supervisorctl
  status` of 100 programs);
- a status change to the event at a subscriber of /v1/events: `svc -p`
  written into the control FIFO until the event has been read, so the
  figure includes supervise's reaction and the status file's write;
- `GET /v1/services` with 1,000 services, connected client, JSON decoded.

`python -m bench.api [--quick]` runs it alone.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from bench import impls, table, venv
from bench.worker import ms

RUN = "#!/bin/sh\nexec sleep 100000\n"


class UnixHTTP(HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix)


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's Unix socket, one kept-alive connection."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.unix = path

    def make_connection(self, host: Any) -> HTTPConnection:
        conn = self._connection[1]
        if conn is None:
            conn = UnixHTTP(self.unix)
            self._connection = host, conn
        return conn


def _services(scan: Path, n: int) -> list[Path]:
    dirs = []
    for i in range(n):
        d = scan / f"s{i:04}"
        d.mkdir()
        (d / "run").write_text(RUN)
        (d / "run").chmod(0o755)
        dirs.append(d)
    return dirs


def _until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _get(conn: UnixHTTP, target: str) -> Any:
    conn.request("GET", target)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"GET {target}: {r.status} {body[:200]!r}")
    return json.loads(body)


class Dtd:
    """A dtd (the bench venv's) over n services, all up."""

    def __init__(self, bindir: Path, top: Path, n: int) -> None:
        self.scan = top / "scan"
        self.scan.mkdir()
        self.dirs = _services(self.scan, n)
        self.sock = str(top / "dtd.sock")
        self.out = open(top / "dtd.out", "wb")
        self.proc = subprocess.Popen([str(bindir / "dtd"), "--scan", str(self.scan), "--socket",
                                      self.sock], stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        _until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 30, "dtd's socket")
        if self.proc.poll() is not None:
            raise RuntimeError("dtd exited: " + (top / "dtd.out").read_text())
        conn = UnixHTTP(self.sock)
        _until(lambda: sum(s["state"] == "up" for s in _get(conn, "/v1/services")) == n,
               60 + n / 10, f"{n} services up")
        conn.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


def _median_ms(samples: list[float]) -> float:
    return ms(statistics.median(samples))


def dtd_figures(bindir: Path, quick: bool) -> dict[str, float]:
    n = 30 if quick else 200
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dtd-bench-api-") as t:
        d = Dtd(bindir, Path(t), 100)
        try:
            conn = UnixHTTP(d.sock)
            _get(conn, "/v1/services")
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                _get(conn, "/v1/services")
                samples.append(time.perf_counter() - t0)
            out["status100"] = _median_ms(samples)
            conn.close()

            argv = [str(bindir / "dtdctl"), "--socket", d.sock, "status"]
            samples = []
            for _ in range(5 if quick else 30):
                t0 = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
                samples.append(time.perf_counter() - t0)
            out["dtdctl100"] = _median_ms(samples)

            out["event"] = _event_latency(d, 10 if quick else 50)
        finally:
            d.close()
    with tempfile.TemporaryDirectory(prefix="dtd-bench-api-") as t:
        d = Dtd(bindir, Path(t), 1000)
        try:
            conn = UnixHTTP(d.sock)
            samples = []
            for _ in range(10 if quick else 50):
                t0 = time.perf_counter()
                listed = _get(conn, "/v1/services")
                samples.append(time.perf_counter() - t0)
            assert len(listed) == 1000
            out["list1000"] = _median_ms(samples)
            conn.close()
        finally:
            d.close()
    return out


def _event_latency(d: Dtd, n: int) -> float:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.sock)
    s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: dtd\r\n\r\n")
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):
        pass
    control = str(d.dirs[0] / "supervise" / "control")
    name = d.dirs[0].name
    samples = []
    for i in range(n):
        paused = i % 2 == 0
        fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK)
        t0 = time.perf_counter()
        os.write(fd, b"p" if paused else b"c")
        os.close(fd)
        while True:
            size = int(f.readline(), 16)
            ev = json.loads(f.read(size + 2)[:size])
            if ev["service"]["name"] == name and ev["service"]["paused"] == paused:
                break
        samples.append(time.perf_counter() - t0)
    f.close()
    s.close()
    return _median_ms(samples)


def supervisord_figures(quick: bool) -> dict[str, float]:
    impl = impls.supervisord()
    if not impl.usable("supervisord") or not impl.usable("supervisorctl"):
        return {}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dtd-bench-api-sd-") as t:
        top = Path(t)
        dirs = _services(top, 100)
        assert impl.configure is not None
        impl.configure(top, dirs)
        conf = str(top / impls.CONF_NAME)
        proc = subprocess.Popen(["/usr/bin/supervisord", "-n", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        sock = str(top / "supervisor.sock")
        try:
            _until(lambda: os.path.exists(sock), 30, "supervisord's socket")
            rpc = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(sock))

            def running() -> int:
                info: list[dict[str, Any]] = rpc.supervisor.getAllProcessInfo()  # type: ignore[assignment]
                return sum(p["statename"] == "RUNNING" for p in info)

            _until(lambda: running() == 100, 60, "100 programs running")
            samples = []
            for _ in range(30 if quick else 200):
                t0 = time.perf_counter()
                rpc.supervisor.getAllProcessInfo()
                samples.append(time.perf_counter() - t0)
            out["status100"] = _median_ms(samples)
            argv = ["/usr/bin/supervisorctl", "-c", conf, "status", *[d.name for d in dirs]]
            samples = []
            for _ in range(3 if quick else 15):
                t0 = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL)
                samples.append(time.perf_counter() - t0)
            out["ctl100"] = _median_ms(samples)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    ours = dtd_figures(venv.bindir(), quick)
    try:
        theirs = supervisord_figures(quick)
    except Exception as e:  # dtd's figures are still worth printing
        print(f"api: supervisord: {type(e).__name__}: {e}", file=sys.stderr)
        theirs = {}

    def row(figure: str, key: str, peer: str | None, limit: float) -> dict[str, Any]:
        return {"figure": figure, "unit": "ms",
                "results": {"supervisord": theirs.get(peer) if peer else None, "dtd": ours.get(key)},
                "target": f"<= {limit:g} ms", "limit": limit}

    return [
        row("API: status of 100 services, client connected (supervisord: XML-RPC)",
            "status100", "status100", 5),
        row("`dtdctl status` of 100 services, whole process (supervisorctl status)",
            "dtdctl100", "ctl100", 30),
        row("API: status change (svc -p) to the event at a subscriber", "event", None, 20),
        row("API: GET /v1/services with 1,000 services, client connected", "list1000", None, 50),
    ]


def main() -> int:
    rows = run("--quick" in sys.argv[1:])
    print(table.markdown(rows))
    venv.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
