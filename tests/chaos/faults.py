"""Fault injectors: signals to the root, workers and loggers, file system
changes under the root, and garbage into every input.

Each injector does one thing to a rig and notes it (rig.note) with the time,
so that lost lines can be laid next to what happened then. Injectors that
last (a stopped root, a full disk, a starved root) come as a start and an
end, and the scenario schedules both.
"""

import errno
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import threading
import time
from pathlib import Path

from conftest import ours, ref

from .rig import Rig, api_get, control

NOT_COMMANDS = bytes(b for b in range(256) if b not in b"udopchaitkxq12")
# control bytes whose signal ends a multilog on the spot (KILL, HUP, INT,
# QUIT, USR1, USR2: default dispositions), losing what it had read
FATAL_TO_MULTILOG = b"khiq12"


def _signal(pid: int, sig: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


# -- signals ------------------------------------------------------------------


def kill_root(rig: Rig, low_fds: int | None = None) -> None:
    rig.kill_root()
    rig.note("root SIGKILL", "")
    rig.start_root(low_fds)


def kill_root_and_worker(rig: Rig, sid: str) -> None:
    """Both at once: the new root must find the new worker adopting the old
    ./run, not starting a second one."""
    if _signal(rig.worker(rig.paths[sid]), signal.SIGKILL):
        rig.note("worker SIGKILL (main)", sid)
    kill_root(rig)


def kill_forker(rig: Rig) -> None:
    """The root's forker (and the children it keeps waiting for requests)."""
    root = rig.root_pid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/comm", "rb") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == b"dtd-forker" and int(fields[1]) == root and root:
            if _signal(int(entry), signal.SIGKILL):
                rig.note("forker SIGKILL", entry)


def kill_worker(rig: Rig, rnd: random.Random, sid: str) -> None:
    side = rnd.choice(("main", "log"))
    d = rig.paths[sid] if side == "main" else rig.paths[sid] / "log"
    if _signal(rig.worker(d), signal.SIGKILL):
        rig.note(f"worker SIGKILL ({side})", sid)


def kill_logger(rig: Rig, sid: str, sig: signal.Signals) -> None:
    if _signal(rig.up(rig.paths[sid] / "log"), sig):
        rig.note(f"logger {sig.name}", sid)


def kill_writer(rig: Rig, sid: str) -> None:
    if _signal(rig.up(rig.paths[sid]), signal.SIGKILL):
        rig.note("writer SIGKILL", sid)


def stop_root(rig: Rig) -> int:
    pid = rig.root_pid()
    if _signal(pid, signal.SIGSTOP):
        rig.note("root SIGSTOP", str(pid))
    return pid


def cont_root(rig: Rig, pid: int) -> None:
    if _signal(pid, signal.SIGCONT):
        rig.note("root SIGCONT", str(pid))


# -- the file system under the root --------------------------------------------


def rename_service(rig: Rig, sid: str) -> None:
    """Renamed while up; a renamed one gets its name back."""
    d = rig.paths[sid]
    new = d.parent / (sid if d.name != sid else sid + "-renamed")
    os.rename(d, new)
    rig.paths[sid] = new
    rig.note("service renamed", sid)


def exile_service(rig: Rig, sid: str) -> None:
    """Out of the scan directory while up: removed, as the root sees it."""
    d = rig.paths[sid]
    os.rename(d, rig.trash / d.name)
    rig.paths[sid] = rig.trash / d.name
    rig.note("service moved out of the scan directory", sid)


def bring_back(rig: Rig, sid: str) -> None:
    d = rig.paths[sid]
    os.rename(d, rig.scan / d.name)
    rig.paths[sid] = rig.scan / d.name
    rig.note("service moved back in", sid)


def scan_away(rig: Rig) -> Path:
    away = rig.top / "service.away"
    os.rename(rig.scan, away)
    for sid, d in rig.paths.items():
        if d.parent == rig.scan:
            rig.paths[sid] = away / d.name
    rig.note("scan directory removed", "")
    return away


def scan_recreated(rig: Rig) -> None:
    rig.scan.mkdir()
    rig.note("scan directory recreated (empty)", "")


def scan_back(rig: Rig, away: Path) -> None:
    # services moved in meanwhile (an exiled one brought back) go along
    for entry in rig.scan.iterdir():
        os.rename(entry, away / entry.name)
        for sid, d in rig.paths.items():
            if d == entry:
                rig.paths[sid] = away / entry.name
    os.rmdir(rig.scan)
    os.rename(away, rig.scan)
    for sid, d in rig.paths.items():
        if d.parent == away:
            rig.paths[sid] = rig.scan / d.name
    rig.note("scan directory back", "")


def remove_tree(rig: Rig, d: Path) -> None:
    """rm -rf of a service directory while its worker writes in it."""
    for _ in range(20):
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            break
        time.sleep(0.05)
    rig.note("service directory removed", d.name)


def fill_disk(rig: Rig) -> int:
    """Fill the log file system to the last block; the bytes written."""
    filler = rig.logs / ".filler"
    total = 0
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    total += f.write(chunk) or 0
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    rig.note("log disk full", f"{total} bytes of filler")
    return total


def free_disk(rig: Rig) -> None:
    try:
        os.unlink(rig.logs / ".filler")
    except FileNotFoundError:
        return
    rig.note("log disk freed", "")


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def prlimit(rig: Rig, pid: int, n: int | None) -> bool:
    """The root's soft descriptor limit; None: back up to the hard one.
    Only the soft limit: without CAP_SYS_RESOURCE (a container) a lowered
    hard limit cannot be raised again."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    spec = f"{hard if n is None else n}:{hard}"
    p = subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={spec}"], capture_output=True)
    if p.returncode == 0:
        rig.note("root descriptor limit", spec)
    return p.returncode == 0


# -- garbage -------------------------------------------------------------------


def garbage_control(rig: Rig, rnd: random.Random, sid: str, any_byte: bool,
                    kill_logger: bool = True) -> None:
    """Bytes into the control FIFOs of a service and of its logger. Bytes
    that are no command must change nothing; any bytes (commands among them)
    are followed by "cu", as an operator would put the service back. The
    commands among them are noted: a k is a SIGKILL (kill_logger False: no k
    for the logger)."""
    for d in (rig.paths[sid], rig.paths[sid] / "log"):
        before = rig.up(d)
        alphabet = bytes(range(256)) if any_byte else NOT_COMMANDS
        if d.name == "log" and not kill_logger:
            alphabet = bytes(b for b in alphabet if b not in FATAL_TO_MULTILOG)
        data = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 300)))
        if not control(d, data):
            continue
        if any_byte:
            control(d, b"cu")
            side = "logger" if d.name == "log" else "writer"
            fatal = bytes(c for c in FATAL_TO_MULTILOG if c in data)
            if fatal and side == "logger":
                rig.note(f"logger killed by a signal (control {fatal.decode()})", sid)
            for c, what in ((b"k", "SIGKILL"), (b"t", "SIGTERM"), (b"d", "down")):
                if c in data and not (side == "logger" and c in FATAL_TO_MULTILOG):
                    rig.note(f"{side} {what} (control {c.decode()})", sid)
        elif rig.worker(d):
            time.sleep(0.05)
            after = rig.up(d)
            if before and after != before:
                rig.findings.append(f"bytes that are no command changed {d.name}: "
                                    f"pid {before} -> {after}")
    rig.note("garbage into control" + (" (any bytes, then cu)" if any_byte else ""), sid)


def _send(path: Path, data: bytes, read: bool = True, timeout: float = 3.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            s.sendall(data)
            if not read:
                return b""
            s.shutdown(socket.SHUT_WR)
            return s.recv(4096)
        except OSError:
            return b""


def garbage_socket(rig: Rig, rnd: random.Random, names: list[str]) -> None:
    if not rig.root_pid():
        return
    name = rnd.choice(names)
    kind = rnd.choice(("random", "half", "huge", "bad", "bad", "pipelined"))
    if kind == "random":
        _send(rig.sock, rnd.randbytes(rnd.randint(1, 8192)))
    elif kind == "half":
        req = b"GET /v1/services/%s HTTP/1.1\r\nHost: dtd\r\n\r\n" % name.encode()
        _send(rig.sock, req[:rnd.randint(1, len(req) - 1)], read=False)
    elif kind == "huge":
        _send(rig.sock, b"GET /v1/services HTTP/1.1\r\nHost: dtd\r\nX-Big: "
              + b"a" * rnd.choice((20000, 1 << 20)) + b"\r\n\r\n")
    elif kind == "bad":
        body = rnd.choice((b"{", b"[]", b'{"commands": 7}', b'{"commands": "\\u0000zz"}',
                           rnd.randbytes(100)))
        target = rnd.choice((b"/v1/services/%2e%2e%2fetc/control", b"/v1/services/no-such/control",
                             b"/v1/services/" + b"%ff" * 50, b"/" + b"a" * 5000,
                             b"/v1/services/%00/control"))
        _send(rig.sock, b"%s %s HTTP/1.1\r\nHost: dtd\r\nContent-Length: %d\r\n\r\n%s" % (
            rnd.choice((b"POST", b"GET", b"BREW", b"DELETE")), target, len(body), body))
    else:
        _send(rig.sock, b"GET /v1/services HTTP/1.1\r\nHost: dtd\r\n\r\n" * 50
              + b"GET /metrics HTTP/1.1\r\nHost: dtd\r\nContent-Length: -1\r\n\r\n")
    rig.note("garbage into the socket", kind)


class Slowloris:
    """Connections that send one byte of a request head at a time."""

    def __init__(self, rig: Rig, count: int, every: float) -> None:
        self.rig = rig
        self.count = count
        self.every = every
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self) -> None:
        self.rig.note("slowloris", f"{self.count} connections")
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        socks: list[socket.socket | None] = [None] * self.count
        head = b"GET /v1/services HTTP/1.1\r\nHost: dtd\r\nX-Slow: " + b"s" * 4000
        try:
            i = 0
            while not self.done.wait(self.every):
                for k, s in enumerate(socks):
                    if s is None:  # again, after a root was killed or it hung up
                        s = socks[k] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.setblocking(False)
                        try:
                            s.connect(str(self.rig.sock))
                        except OSError:
                            s.close()
                            socks[k] = None
                            continue
                    try:
                        s.send(head[i % len(head):i % len(head) + 1])
                    except OSError:
                        s.close()
                        socks[k] = None
                i += 1
        finally:
            for s in socks:
                if s is not None:
                    s.close()


BUS_CALLS: list[list[str]] = [
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "GetService", "i", "5"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "GetService", "s", ""],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "GetService", "s", "../../../etc"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "GetService", "s", "x" * 100000],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "Frobnicate"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager",
     "ListServices", "s", "extra"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.dtd.Nothing", "ListServices"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1/service/_zz",
     "org.dtd.Supervise1.Service", "Up"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1/service/_2e_2e",
     "org.dtd.Supervise1.Service", "Kill", "s", "now"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.freedesktop.DBus.Properties",
     "Get", "ss", "org.dtd.Supervise1.Manager", "NoSuchProperty"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.freedesktop.DBus.Properties",
     "Set", "ssv", "org.dtd.Supervise1.Manager", "ScanDirectory", "s", "/"],
    ["call", "org.dtd.Supervise1", "/org/dtd/Supervise1", "org.freedesktop.DBus.Properties",
     "GetAll", "s", "\x01\x02"],
    ["introspect", "org.dtd.Supervise1", "/org/dtd/Supervise1/service"],
]


def garbage_bus(rig: Rig, rnd: random.Random, sid: str) -> None:
    if rig.bus is None or not rig.root_pid():
        return
    calls = rnd.sample(BUS_CALLS, 4) + [[
        "call", "org.dtd.Supervise1", "/org/dtd/Supervise1/service/" + _escape(sid),
        "org.dtd.Supervise1.Service", rnd.choice(("Up", "Continue")), "s", "unexpected"]]
    for args in calls:
        try:
            subprocess.run(["busctl", f"--address={rig.bus.address}", "--timeout=3", *args],
                           capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            rig.findings.append(f"busctl {' '.join(args)[:120]} had no answer in 10 s "
                                f"(root {rig.root_pid()})")
    rig.note("garbage into D-Bus", f"{len(calls)} calls")


def bus_answers(rig: Rig) -> bool:
    assert rig.bus is not None
    p = subprocess.run(["busctl", f"--address={rig.bus.address}", "--timeout=5", "call",
                        "org.dtd.Supervise1", "/org/dtd/Supervise1",
                        "org.dtd.Supervise1.Manager", "ListServices"],
                       capture_output=True, timeout=15)
    return p.returncode == 0


def _escape(name: str) -> str:
    out = []
    for i, b in enumerate(name.encode()):
        c = chr(b)
        if c.isascii() and c.isalnum() and not (i == 0 and c.isdigit()):
            out.append(c)
        else:
            out.append("_%02x" % b)
    return "".join(out)


def envdir_garbage(rig: Rig, rnd: random.Random, sid: str) -> dict[str, object]:
    """Garbage files into a writer's ./env; the writer is restarted through
    envdir with them, and our envdir is compared with the reference's on the
    same directory. Returns the comparison."""
    env = rig.paths[sid] / "env"
    kind = rnd.choice(("binary", "huge", "names", "subdir", "dangling"))
    if kind == "binary":
        (env / "BIN").write_bytes(rnd.randbytes(rnd.randint(1, 3000)))
    elif kind == "huge":
        (env / "HUGE").write_bytes(b"h" * (8 << 20) + b"\nsecond line")
    elif kind == "names":
        for name in ("A=B", "with space", "\x01ctl", "caf\xe9", "n" * 250, "-", "=", "PATH"):
            try:
                (env / name).write_bytes(rnd.randbytes(20).replace(b"\0", b"z"))
            except OSError:
                pass
    elif kind == "subdir":
        (env / "SUB").mkdir(exist_ok=True)
    else:
        (env / "DANGLING").symlink_to(rig.top / "nowhere")
    result = compare_envdir(env)
    result["kind"] = kind
    control(rig.paths[sid], b"t")
    rig.note(f"garbage into envdir ({kind})", sid)
    return result


def compare_envdir(env: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for side, prog in (("ours", ours("envdir")), ("ref", ref("envdir"))):
        if not os.path.exists(prog):
            continue
        # a locale set: else Python coerces the C locale and adds LC_CTYPE
        # (test_findings has that one)
        p = subprocess.run([prog, str(env), "/usr/bin/env", "-0"], capture_output=True,
                           timeout=30, env={"KEEP": "1", "LANG": "C.UTF-8"})
        out[side] = (p.returncode, sorted(p.stdout.split(b"\0")), p.stderr.replace(
            prog.encode(), b"envdir"))
    return out


def clean_envdir(rig: Rig, sid: str) -> None:
    env = rig.paths[sid] / "env"
    for p in env.iterdir():
        if p.name != "CHAOS":
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    control(rig.paths[sid], b"u")


ACTIONS = ["t", "s4096", "s99999999999999999999", "s0", "n0", "n3", "n99999999999", "e",
           "+*", "-*", "+a*", "-", "+", "=", "!cat", "!", "t", "s", "n"]


def multilog_args(rnd: random.Random) -> list[bytes]:
    args: list[bytes] = []
    for _ in range(rnd.randint(0, 6)):
        r = rnd.random()
        if r < 0.4:
            args.append(rnd.choice(ACTIONS).encode())
        elif r < 0.6:
            args.append(b"./" + "".join(rnd.choice(string.ascii_letters) for _ in range(4)).encode())
        elif r < 0.7:
            args.append(b"=" + "".join(rnd.choice(string.ascii_letters) for _ in range(4)).encode())
        elif r < 0.85:
            # any bytes but a path out of the directory the run is given
            junk = rnd.randbytes(rnd.randint(1, 30)).replace(b"/", b"_").replace(b"\0", b"")
            args.append(junk if junk[:1] not in (b".", b"!", b"=") else b"x" + junk)
        else:
            args.append(rnd.choice((b"+", b"-", b"e")) + rnd.randbytes(rnd.randint(0, 1200))
                        .replace(b"\0", b""))
    return args


def garbage_multilog(rig: Rig, rnd: random.Random, n: int) -> list[dict[str, object]]:
    """multilog scripts of garbage, ours and the reference's each in a fresh
    directory with the same input: exit codes compared, tracebacks found."""
    found: list[dict[str, object]] = []
    base = rig.top / "multilog-fuzz"
    base.mkdir(exist_ok=True)
    data = b"one\ntwo\n" + rnd.randbytes(200).replace(b"\0", b"\n") + b"\nlast\n"
    for i in range(n):
        args = multilog_args(rnd)
        codes: dict[str, int | str] = {}
        tb = False
        for side, prog in (("ours", ours("multilog")), ("ref", ref("multilog"))):
            cwd = base / f"{i}-{side}"
            cwd.mkdir()
            try:
                p = subprocess.run([prog.encode(), *args], input=data, capture_output=True,
                                   cwd=cwd, timeout=10, start_new_session=True)
                codes[side] = p.returncode
                tb = tb or (side == "ours" and b"Traceback" in p.stderr)
            except subprocess.TimeoutExpired:
                codes[side] = "timeout"
            shutil.rmtree(cwd, ignore_errors=True)
        if tb or codes.get("ours") != codes.get("ref", codes.get("ours")):
            found.append({"args": [a[:60].decode(errors="backslashreplace") for a in args],
                          "codes": codes, "traceback": tb})
    rig.note("garbage multilog scripts", f"{n} runs")
    return found


def api_flood(rig: Rig, count: int) -> list[socket.socket]:
    """Connections held open: each is a descriptor in the root."""
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(str(rig.sock))
            socks.append(s)
        except OSError:
            s.close()
    rig.note("API connections held open", str(len(socks)))
    return socks


def api_answers(rig: Rig, timeout: float = 5.0) -> bool:
    try:
        return api_get(rig.sock, "/v1/services", timeout)[0] == 200
    except OSError:
        return False
