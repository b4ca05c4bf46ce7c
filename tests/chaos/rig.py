"""The chaos rig: a scan directory of numbered-line writers with multilog
loggers, a root that is started, killed and started again, and a teardown
that ends what it started (by pid and process group), unmounts what it
mounted and removes its directory.

Layout under one temporary directory TOP:

    service/ID/run          writer.py (some under envdir ./env)
    service/ID/log/run      our multilog: t s16384 n1000 TOP/logs/ID
    logs/                   the log directories (a small tmpfs when it mounts)
    ledger/ID/INC           the last line each incarnation wrote
    ledger/violations       moments with two copies of a ./run
    root.err                every root's stdout and stderr, the services' too
    dtd.sock                the socket API
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import ours, pid_alive, sweep

from dtd import status

from . import ledger

WRITER = Path(__file__).resolve().parent / "writer.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
TMPFS_SIZE = 64 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class RootRun:
    """One incarnation of the root."""
    proc: "subprocess.Popen[bytes]"
    started: float
    killed: bool = False  # by the suite: SIGKILL, or SIGTERM at the end
    low_fds: int | None = None
    no_scan: bool = False  # started while the scan directory was away


@dataclass
class Sample:
    phase: str
    at: float
    latency: float  # seconds; -1 when the request failed
    error: str = ""


@dataclass
class Crash:
    pid: int
    code: int | None
    note: str


class Rig:
    def __init__(self, interval: float, bus: bool) -> None:
        self.top = Path(tempfile.mkdtemp(prefix="dtd-chaos-"))
        self.scan = self.top / "service"
        self.logs = self.top / "logs"
        self.ledger = self.top / "ledger"
        self.trash = self.top / "trash"
        self.sock = self.top / "dtd.sock"
        self.err = self.top / "root.err"
        for d in (self.scan, self.logs, self.ledger, self.trash):
            d.mkdir()
        self.interval = interval
        self.paths: dict[str, Path] = {}  # writer id -> its service directory now
        self.writers: list[str] = []
        self.roots: list[RootRun] = []
        self.crashes: list[Crash] = []
        self.samples: list[Sample] = []
        self.phase = "setup"
        self.tmpfs = ""  # why the logs are not on a tmpfs, or "" when they are
        self.mounted = False
        self.bus = None
        self.events: list[tuple[float, str, str]] = []  # (time, fault, target)
        self.findings: list[str] = []
        self.lock = threading.Lock()
        self.sampling = threading.Event()
        self.sampler: threading.Thread | None = None
        self.mount_logs()
        if bus:
            from busfixture import start_bus
            try:
                self.bus = start_bus("session")
            except (OSError, RuntimeError) as e:
                self.findings.append(f"no private bus, D-Bus garbage skipped: {e}")

    # -- the log directories on a small tmpfs ---------------------------------

    def mount_logs(self) -> None:
        if os.geteuid() != 0:
            self.tmpfs = "not root: cannot mount a tmpfs"
            return
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755",
                            "tmpfs", str(self.logs)], capture_output=True)
        if p.returncode != 0:
            self.tmpfs = "mount -t tmpfs failed: " + p.stderr.decode(errors="replace").strip()
            return
        self.mounted = True

    # -- services ---------------------------------------------------------------

    def writer_cmd(self, sid: str) -> str:
        return f"{PYTHON} -IS {WRITER} {sid} {self.ledger} {self.interval}"

    def add_writer(self, sid: str, envdir: bool = False, where: Path | None = None) -> Path:
        """A writer and its logger, made aside and renamed into the scan
        directory (or where), the usual way to add a service."""
        (self.ledger / sid).mkdir()
        staging = self.trash / ("new-" + sid)
        staging.mkdir()
        cmd = self.writer_cmd(sid)
        if envdir:
            (staging / "env").mkdir()
            (staging / "env" / "CHAOS").write_text(sid + "\n")
            cmd = f"{ours('envdir')} ./env {cmd}"
        _script(staging / "run", f"exec {cmd}")
        (staging / "log").mkdir()
        _script(staging / "log" / "run",
                f"exec {ours('multilog')} t s16384 n1000 {self.logs / sid}")
        d = (where or self.scan) / sid
        os.rename(staging, d)
        self.paths[sid] = d
        self.writers.append(sid)
        return d

    def add_sleeper(self, name: str, where: Path | None = None) -> Path:
        d = (where or self.scan) / name
        d.mkdir()
        _script(d / "run", "exec sleep 100000")
        return d

    # -- the root -----------------------------------------------------------------

    @property
    def root(self) -> RootRun | None:
        return self.roots[-1] if self.roots else None

    def root_pid(self) -> int:
        r = self.root
        return r.proc.pid if r is not None and r.proc.poll() is None else 0

    def start_root(self, low_fds: int | None = None) -> RootRun:
        env = dict(os.environ)
        bus = "none"
        if self.bus is not None:
            env = self.bus.env()
            bus = "session"
        argv = [ours("dtd"), "--scan", str(self.scan), "--socket", str(self.sock),
                "--bus", bus, "--stop-timeout", "5"]
        if low_fds is not None:
            argv = ["prlimit", f"--nofile={low_fds}:{low_fds}", "--", *argv]
        with open(self.err, "ab") as out:
            out.write(b"=== root %d at %.3f%s\n" % (len(self.roots) + 1, time.time(),
                                                     b" low fds" if low_fds else b""))
            out.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, start_new_session=True)
        run = RootRun(proc, time.monotonic(), low_fds=low_fds, no_scan=not self.scan.is_dir())
        self.roots.append(run)
        return run

    def kill_root(self) -> None:
        r = self.root
        if r is None or r.proc.poll() is not None:
            return
        r.killed = True
        r.proc.kill()
        r.proc.wait()

    def check_root(self) -> None:
        """A root that exited when the suite did not kill it crashed: noted,
        and another is started so that the suite goes on."""
        r = self.root
        if r is None or r.proc.poll() is None:
            return
        if not r.killed:
            r.killed = True  # counted once
            if r.no_scan and r.proc.returncode == 111:
                # "unable to chdir": what svscan does without its directory
                self.note("root refused to start: no scan directory")
            else:
                self.crashes.append(Crash(r.proc.pid, r.proc.returncode,
                                          f"exited during {self.phase}"))
        if self.scan.is_dir():
            self.start_root()

    def wait_api(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_root()
            try:
                if api_get(self.sock, "/v1/services", 2.0)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def cpu_ticks(self, pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            return 0
        return int(fields[11]) + int(fields[12])

    # -- the API sampler (GET /v1/services, continuously) -------------------------

    def start_sampling(self, every: float = 0.05) -> None:
        self.sampling.clear()
        self.sampler = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self.sampler.start()

    def stop_sampling(self) -> None:
        self.sampling.set()
        if self.sampler is not None:
            self.sampler.join(timeout=10)
            self.sampler = None

    def _sample(self, every: float) -> None:
        while not self.sampling.wait(every):
            t0 = time.perf_counter()
            error = ""
            try:
                code, _ = api_get(self.sock, "/v1/services", 5.0)
                if code != 200:
                    error = f"status {code}"
            except OSError as e:
                error = type(e).__name__
            lat = time.perf_counter() - t0
            with self.lock:
                self.samples.append(Sample(self.phase, time.time(), -1 if error else lat, error))

    # -- state of services -----------------------------------------------------

    def up(self, d: Path) -> int:
        try:
            st = status.read(str(d))
        except OSError:
            return 0
        return st.pid if st is not None and st.pid and pid_alive(st.pid) else 0

    def worker(self, d: Path) -> int:
        return status.lock_owner(str(d)) or 0

    def settle(self, timeout: float) -> list[str]:
        """Writers not up with their loggers and writing, at the deadline."""
        deadline = time.monotonic() + timeout
        first: dict[str, int] = {}
        pending = list(self.writers)
        while pending and time.monotonic() < deadline:
            self.check_root()
            still = []
            for sid in pending:
                d = self.paths[sid]
                inc = ledger.newest_incarnation(self.ledger, sid)
                n = ledger.writer_last(self.ledger, sid).get(inc or "", -1)
                if not (self.up(d) and self.up(d / "log") and inc):
                    still.append(sid)
                elif sid not in first or n <= first[sid]:
                    first.setdefault(sid, n)
                    still.append(sid)
            pending = still
            time.sleep(0.1)
        return pending

    def api_disagrees(self, timeout: float) -> list[str]:
        """Writers and loggers whose state the API gives otherwise than
        their status files, still after timeout (a full rescan and more)."""
        import json
        deadline = time.monotonic() + timeout
        while True:
            wrong = []
            try:
                shown = {s["name"]: s for s in json.loads(api_get(self.sock, "/v1/services", 5.0)[1])}
            except (OSError, ValueError):
                shown = {}
            for sid in self.writers:
                for d, name in ((self.paths[sid], self.paths[sid].name),
                                (self.paths[sid] / "log", self.paths[sid].name + "/log")):
                    pid = self.up(d)
                    s = shown.get(name, {})
                    if (s.get("state") == "up" and s.get("pid")) != (bool(pid) and pid):
                        wrong.append(f"{name}: API {s.get('state')} pid {s.get('pid')}, status pid {pid}")
            if not wrong or time.monotonic() > deadline:
                return wrong
            time.sleep(0.2)

    def stop_root(self, timeout: float = 60.0) -> bool:
        """SIGTERM: every service down, every logger drained, then exit 0."""
        r = self.root
        if r is None or r.proc.poll() is not None:
            return False
        r.killed = True
        r.proc.send_signal(signal.SIGTERM)
        try:
            code = r.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.crashes.append(Crash(r.proc.pid, None, "still running a minute after SIGTERM"))
            r.proc.kill()
            r.proc.wait()
            return False
        if code != 0:
            self.crashes.append(Crash(r.proc.pid, code, "exit status after SIGTERM"))
        return code == 0

    def drain_by_hand(self, timeout: float = 30.0) -> None:
        """Without a root: writers down and their workers gone, then each
        logger reads to the end of its pipe and exits."""
        for sid in self.writers:
            _control(self.paths[sid], b"dx")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self.worker(self.paths[s]) for s in self.writers):
            time.sleep(0.05)
        for sid in self.writers:
            _control(self.paths[sid] / "log", b"ox")
        while time.monotonic() < deadline and any(
                self.worker(self.paths[s] / "log") for s in self.writers):
            time.sleep(0.05)

    def account(self) -> ledger.Account:
        return ledger.account({sid: self.logs / sid for sid in self.writers}, self.ledger)

    def tracebacks(self) -> list[str]:
        """Each traceback on the roots' stderr (the services' stderr too), as
        where it was raised (the last frame) and what it raised."""
        text = self.err.read_text(errors="replace") if self.err.exists() else ""
        out = []
        for chunk in text.split("Traceback (most recent call last):")[1:]:
            lines = chunk.splitlines()
            frames = [x.strip() for x in lines if x.startswith("  File ")]
            raised = next((x for x in lines[1:] if x and not x.startswith(" ")), "?")
            where = frames[-1].replace("File ", "") if frames else "?"
            out.append(f"{raised[:160]} at {where[-120:]}")
        return out

    def note(self, fault: str, target: str = "") -> None:
        self.events.append((time.time(), fault, target))

    # -- teardown ---------------------------------------------------------------

    def close(self) -> None:
        """Everything started ends, the tmpfs is unmounted, TOP removed; with
        CHAOS_KEEP=DIR, the roots' output and the fault timeline are copied
        there first, for a post-mortem."""
        self.stop_sampling()
        keep = os.environ.get("CHAOS_KEEP")
        if keep:
            os.makedirs(keep, exist_ok=True)
            if self.err.exists():
                shutil.copy(self.err, os.path.join(keep, "root.err"))
            with open(os.path.join(keep, "events"), "w") as f:
                f.writelines(f"{t:.3f} {kind} {target}\n" for t, kind, target in self.events)
            for d in (self.logs, self.ledger):
                shutil.copytree(d, os.path.join(keep, d.name), dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".filler"))
        for r in self.roots:
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.wait()
        sweep(self.top)
        if self.bus is not None:
            self.bus.stop()
        if self.mounted:
            for _ in range(50):
                if subprocess.run(["umount", str(self.logs)], capture_output=True).returncode == 0:
                    self.mounted = False
                    break
                sweep(self.top)
                time.sleep(0.1)
        shutil.rmtree(self.top, ignore_errors=True)
        assert not self.mounted, f"{self.logs} is still mounted"


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _control(d: Path, data: bytes) -> bool:
    try:
        status.send(str(d), data)
        return True
    except OSError:
        return False


control = _control


def api_get(sock: Path, path: str, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.1 request on the Unix socket; (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(b"GET %s HTTP/1.1\r\nHost: dtd\r\nConnection: close\r\n\r\n" % path.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        code = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"not an HTTP answer: {data[:60]!r}")
    return code, body
