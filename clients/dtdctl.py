"""dtdctl: the client of dtd's socket API.

    dtdctl [--socket PATH] [--scan DIR] status [NAME...] [--json]
    dtdctl up|down|once|pause|cont|hup|alarm|int|term|kill|exit NAME...
    dtdctl watch [--json]
    dtdctl wait up|ready|down NAME... [--timeout S]
    dtdctl metrics [-o FILE]

Exit codes: 0 done; 1 timed out, or not in the state asked; 100 usage or a
request the daemon refused for good (no such service, not allowed); 111
temporary (no daemon, a socket error, supervise not running).

Without a daemon, ``status`` reads the status files under the scan
directory instead (``--scan``, default /etc/service).

``wait`` subscribes to the events first, then looks at each service, then
waits for the events that are missing: no polling, and no change can fall
between the look and the wait. A name the daemon does not know yet is
waited for until it appears in that state. ``up`` is reached by any start
the daemon reports, as s6-svwait -u counts s6-supervise's "u" events: a
service whose ./run keeps exiting at once is up for a moment each second,
and that moment ends the wait; ``ready`` (up, and the service said so,
s6-svwait -U) is what shows that a service works. ``down`` means ./run and
./finish have both ended, as sv -w down waits. ``$DTD_SOCKET`` overrides the
default socket (/run/dtd/dtd.sock as root, else $XDG_RUNTIME_DIR/dtd.sock).

HTTP is spoken here by hand, and only the little of it that dtd answers
with: http.client imports the email package, about 20 ms, which alone is
more than this client's whole start-up budget.
"""

import _socket  # socket.py imports selectors and makes enums: 4 ms
import os
import sys
import time

from dtd.clients import apijson
from dtd.diag import EXIT_TEMP, EXIT_USAGE, reason

# typing costs start-up time; mypy treats any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

PROG = "dtdctl"
VERBS = ("up", "down", "once", "pause", "cont", "hup", "alarm", "int", "term", "kill", "exit")
LETTERS = dict(zip(VERBS, "udopchaitkx"))
EXIT_NOT = 1
WAITS = ("up", "ready", "down")

Record = dict[str, "Any"]


class Failed(Exception):
    """A message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_TEMP) -> None:
        super().__init__(message)
        self.code = code


def default_socket() -> str:
    if "DTD_SOCKET" in os.environ:
        return os.environ["DTD_SOCKET"]
    if os.getuid() == 0:
        return "/run/dtd/dtd.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/dtd-{os.getuid()}"
    return os.path.join(runtime, "dtd.sock")


def _quote(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(chr(b) if b in safe else "%%%02X" % b for b in raw)


class Connection:
    """One HTTP/1.1 connection to the daemon's socket."""

    def __init__(self, path: str, timeout: float | None = 30.0) -> None:
        self.path = path
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Failed(f"unable to connect to {path}: {reason(e)}") from e
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def readline(self, limit: int) -> bytes:
        """A line with its newline; what is left, at the end or the limit."""
        while b"\n" not in self.buf and len(self.buf) < limit and self.fill():
            pass
        end = self.buf.find(b"\n", 0, limit) + 1 or min(limit, len(self.buf))
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def read(self, n: int | None = None) -> bytes:
        """n bytes (fewer at the end), or all until the end."""
        while (n is None or len(self.buf) < n) and self.fill():
            pass
        n = len(self.buf) if n is None else n
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, method: str, target: str, body: bytes = b"") -> tuple[int, dict[str, str]]:
        head = f"{method} {target} HTTP/1.1\r\nHost: dtd\r\n"
        if body or method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        line = self.readline(65536)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise Failed(f"unable to talk to {self.path}: bad answer {line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = self.readline(65536)
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        return int(parts[1]), headers

    def body(self, headers: dict[str, str]) -> bytes:
        if self.chunked:
            return b"".join(iter(self.chunk, b""))
        if "content-length" in headers:
            return self.read(int(headers["content-length"]))
        return self.read()

    def chunk(self) -> bytes:
        """The next chunk of a chunked body, b"" at its end."""
        size = self.readline(1024)
        if not size:
            raise Failed(f"{self.path}: connection closed")
        n = int(size.split(b";")[0], 16)
        data = self.read(n + 2)[:n] if n else b""
        if not n:
            self.readline(1024)
        return data

    def call(self, method: str, target: str, body: bytes = b"") -> tuple[int, object]:
        code, headers = self.send(method, target, body)
        data = self.body(headers)
        if headers.get("content-type", "").startswith("application/json"):
            return code, apijson.loads(data)
        return code, data


def refusal(code: int, answer: object) -> Failed:
    message = answer.get("error") if isinstance(answer, dict) else None
    return Failed(str(message or f"status {code}"), EXIT_USAGE if 400 <= code < 500 else EXIT_TEMP)


# -- status ------------------------------------------------------------------

def from_files(scan: str, names: list[str]) -> list[Record]:
    """What the status files say, for when no daemon answers."""
    if not names:
        try:
            entries = sorted(e for e in os.listdir(scan) if not e.startswith("."))
        except OSError as e:
            raise Failed(f"unable to read {scan}: {reason(e)}") from e
        for entry in entries:
            if os.path.isdir(os.path.join(scan, entry)):
                names.append(entry)
                if os.path.isdir(os.path.join(scan, entry, "log")):
                    names.append(entry + "/log")
    # only here: they cost 3 ms at every start
    from dtd import info, status
    from dtd.model import Model

    model = Model(scan)
    for name in names:
        d = os.path.abspath(os.path.join(scan, name))
        try:
            st = status.read(d)
        except OSError:
            st = None
        try:
            running = status.supervise_running(d)
        except OSError:
            running = False
        try:
            facts = info.read(os.path.join(d, info.INFO))
        except OSError:
            facts = None
        model.update(name, d, st, not os.path.exists(os.path.join(d, status.DOWN)), running,
                     facts)
    out: list[Record] = []
    for name in names:
        rec = model.services[name].as_dict()
        del rec["starts"]  # counted by the root only
        out.append(rec)
    return out


def describe(rec: Record, now: float) -> str:
    """One human line: name, state, pid, for how long, and what is unusual."""
    notes = []
    if not rec.get("supervised", True):
        notes.append("supervise not running")
    if rec["paused"]:
        notes.append("paused")
    state = str(rec["state"])
    if rec["want"] != ("up" if state == "up" else "down") and not (state != "up" and rec["want"] == "once"):
        notes.append(f"want {rec['want']}")
    if rec["normally_up"] != (state == "up"):
        notes.append("normally " + ("up" if rec["normally_up"] else "down"))
    notes += _worker_notes(rec, state, now)
    since = float(rec["since"])
    age = f"{max(0, int(now - since))}s" if since else "-"
    pid = str(rec["pid"]) if rec["pid"] else "-"
    return f"{rec['name']:<24} {state:<7} {pid:>8} {age:>9}  {', '.join(notes)}".rstrip()


def _worker_notes(rec: Record, state: str, now: float) -> list[str]:
    """What supervise/info adds: readiness and the service's own status
    text, the backoff, how the last run ended. Records of daemons older
    than the info file lack the keys: nothing is added then."""
    notes = []
    if rec.get("ready") and state == "up":
        notes.append(f"ready {max(0, int(now - float(rec.get('ready_since') or now)))}s")
    if rec.get("status_text"):
        notes.append(apijson.quote(rec["status_text"]))
    if rec.get("backoff"):
        notes.append(f"backoff {float(rec['backoff']):.3g}s")
    if rec.get("fails"):
        notes.append(f"{rec['fails']} failed runs")
    code = rec.get("exit_code")
    if state != "up" and code is not None:
        if code == -1:
            import signal  # its enums cost 1 ms: only when a name is shown

            try:
                name = signal.Signals(int(rec.get("exit_signal", 0))).name
            except ValueError:
                name = f"signal {rec.get('exit_signal')}"
            notes.append("killed by " + name)
        else:
            notes.append(f"exited {code}")
    if rec.get("stopped"):
        notes.append("stopped")
    return notes


def cmd_status(sock: str, scan: str, names: list[str], as_json: bool) -> int:
    try:
        conn = Connection(sock)
    except Failed:
        records = from_files(scan, list(names))
    else:
        try:
            if names:
                records = []
                for name in names:
                    code, answer = conn.call("GET", "/v1/services/" + _quote(name))
                    if code != 200:
                        raise refusal(code, answer)
                    records.append(answer)  # type: ignore[arg-type]
            else:
                code, answer = conn.call("GET", "/v1/services")
                if code != 200:
                    raise refusal(code, answer)
                records = answer  # type: ignore[assignment]
        finally:
            conn.close()
    if as_json:
        import json  # its dumps, for the indent

        sys.stdout.write(json.dumps(records, indent=1) + "\n")
    else:
        now = time.time()
        lines = [f"{'NAME':<24} {'STATE':<7} {'PID':>8} {'SINCE':>9}  NOTES".rstrip()]
        lines += [describe(r, now) for r in records]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


# -- control, events, metrics ------------------------------------------------

def cmd_control(sock: str, verb: str, names: list[str]) -> int:
    conn = Connection(sock)
    try:
        body = b'{"commands": %s}' % apijson.quote(LETTERS[verb]).encode()
        for name in names:
            code, answer = conn.call("POST", f"/v1/services/{_quote(name)}/control", body)
            if code != 202:
                raise refusal(code, answer)
    finally:
        conn.close()
    return 0


def subscribe(sock: str) -> Connection:
    """A connection following /v1/events; subscribed once this returns."""
    conn = Connection(sock, None)
    code, headers = conn.send("GET", "/v1/events")
    if code != 200:
        answer = apijson.loads(conn.body(headers) or b"{}")
        conn.close()
        raise refusal(code, answer)
    return conn


def events(conn: Connection) -> "Iterator[Record]":
    pending = b""
    while True:
        data = conn.chunk()
        if not data:
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line:
                yield apijson.loads(line)


def cmd_watch(sock: str, as_json: bool) -> int:
    conn = subscribe(sock)
    try:
        for ev in events(conn):
            if as_json:
                import json  # its dumps, for the separators

                line = json.dumps(ev, separators=(",", ":"))
            else:
                svc = ev["service"]
                pid = f" pid {svc['pid']}" if svc["pid"] else ""
                line = (time.strftime("%Y-%m-%d %H:%M:%S ") + f"{svc['name']} {ev['event']}:"
                        f" {svc['state']}{pid} want {svc['want']}" + (" paused" if svc["paused"] else "")
                        + (" ready" if svc.get("ready") else ""))
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    finally:
        conn.close()
    return 0


def reached(rec: Record, state: str) -> bool:
    """Whether a service record is in the state wait asks for."""
    if state == "ready":
        return rec.get("state") == "up" and bool(rec.get("ready"))
    return rec.get("state") == state


def cmd_wait(sock: str, state: str, names: list[str], timeout: float | None) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    conn = subscribe(sock)  # first, so that no change falls between look and wait
    try:
        pending = dict.fromkeys(names)  # in the order given, for the message
        look = Connection(sock)
        try:
            for name in names:
                code, answer = look.call("GET", "/v1/services/" + _quote(name))
                if code == 200 and isinstance(answer, dict) and reached(answer, state):
                    pending.pop(name, None)
                elif code not in (200, 404):  # a service not there yet may come
                    raise refusal(code, answer)
        finally:
            look.close()
        stream = events(conn)
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return timed_out(state, list(pending))
            conn.sock.settimeout(left)
            try:
                ev = next(stream)
            except TimeoutError:  # _socket.timeout
                return timed_out(state, list(pending))
            except StopIteration:
                raise Failed(f"{sock}: the daemon went away")
            svc = ev["service"]
            if svc["name"] in pending and ev["event"] != "removed" and reached(svc, state):
                del pending[svc["name"]]
    finally:
        conn.close()
    return 0


def timed_out(state: str, names: list[str]) -> int:
    sys.stderr.write(f"{PROG}: timed out: not {state}: {' '.join(names)}\n")
    return EXIT_NOT


def cmd_metrics(sock: str, out: str | None) -> int:
    conn = Connection(sock)
    try:
        code, answer = conn.call("GET", "/metrics")
    finally:
        conn.close()
    if code != 200 or not isinstance(answer, bytes):
        raise refusal(code, answer)
    if out is None:
        sys.stdout.buffer.write(answer)
        return 0
    # the textfile collector may read DIR/*.prom at any moment: never a half
    # file. Written aside in the same directory (rename does not cross file
    # systems) under a name the collector skips, then renamed over.
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        try:
            os.unlink(tmp)  # left by a dtdctl killed with this pid
        except FileNotFoundError:
            pass
        # "x": a file, or a symbolic link put there, is not followed
        with open(tmp, "xb") as f:
            f.write(answer)
        os.rename(tmp, out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise Failed(f"unable to write {out}: {reason(e)}") from e
    return 0


USAGE = ("usage: dtdctl [--socket PATH] [--scan DIR] COMMAND ...\n"
         "  status [NAME...] [--json]\n"
         "  " + "|".join(VERBS) + " NAME...\n"
         "  watch [--json]\n"
         "  wait up|ready|down NAME... [--timeout S]\n"
         "  metrics [-o FILE]\n")
COMMANDS = ("status", *VERBS, "watch", "wait", "metrics")
# options that take a value, and the commands that know them
VALUED = {"--socket": None, "--scan": None, "--timeout": "wait", "-o": "metrics"}
FLAGS = {"--json": ("status", "watch")}


class Args:
    """The command line, parsed by hand: argparse with its help formatter
    (shutil, locale) costs 7 ms, a quarter of the start-up budget."""

    def __init__(self, words: list[str]) -> None:
        self.socket: str | None = None
        self.scan = "/etc/service"
        self.timeout: float | None = None
        self.out: str | None = None
        self.json = False
        self.help = False
        self.command = ""
        self.state = ""  # of wait
        self.names: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            i += 1
            if w == "--":
                rest += words[i:]
                break
            key, eq, value = w.partition("=") if w.startswith("--") else (w, "", "")
            if w.startswith("-o") and len(w) > 2:
                key, eq, value = "-o", "=", w[2:]
            if key in VALUED:
                if not eq:
                    if i == len(words):
                        raise Failed(f"option {key} needs a value", EXIT_USAGE)
                    value = words[i]
                    i += 1
                self.set(key, value)
            elif key in FLAGS and not eq:
                self.json = True
            elif w in ("-h", "--help"):
                self.help = True
            elif w.startswith("-") and w != "-":
                raise Failed(f"unknown option {w}", EXIT_USAGE)
            else:
                rest.append(w)
        if self.help:
            return
        if not rest or rest[0] not in COMMANDS:
            raise Failed("no command" if not rest else f"unknown command {rest[0]}", EXIT_USAGE)
        self.command = rest[0]
        self.names = rest[1:]
        self.check()

    def set(self, key: str, value: str) -> None:
        if key == "--socket":
            self.socket = value
        elif key == "--scan":
            self.scan = value
        elif key == "-o":
            self.out = value
        else:
            try:
                self.timeout = float(value)
            except ValueError:
                self.timeout = -1.0
            # nan and inf parse, and would wait forever or fail late
            if not 0 <= self.timeout < 1e9:
                raise Failed(f"bad timeout {value}", EXIT_USAGE) from None

    def check(self) -> None:
        c = self.command
        if self.timeout is not None and c != "wait":
            raise Failed(f"{c} takes no --timeout", EXIT_USAGE)
        if self.out is not None and c != "metrics":
            raise Failed(f"{c} takes no -o", EXIT_USAGE)
        if self.json and c not in FLAGS["--json"]:
            raise Failed(f"{c} takes no --json", EXIT_USAGE)
        if c == "wait":
            if not self.names or self.names[0] not in WAITS:
                raise Failed("wait up, ready or down?", EXIT_USAGE)
            self.state = self.names.pop(0)
        if c in ("watch", "metrics") and self.names:
            raise Failed(f"{c} takes no names", EXIT_USAGE)
        if c in LETTERS or c == "wait":
            if not self.names:
                raise Failed(f"{c} needs at least one NAME", EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    try:
        args = Args(list(sys.argv[1:] if argv is None else argv))
    except Failed as e:
        sys.stderr.write(f"{PROG}: usage error: {e}\n{USAGE}")
        return EXIT_USAGE
    if args.help:
        sys.stdout.write(USAGE)
        return 0
    sock = args.socket or default_socket()
    try:
        if args.command == "status":
            return cmd_status(sock, args.scan, args.names, args.json)
        if args.command in LETTERS:
            return cmd_control(sock, args.command, args.names)
        if args.command == "watch":
            return cmd_watch(sock, args.json)
        if args.command == "wait":
            return cmd_wait(sock, args.state, args.names, args.timeout)
        return cmd_metrics(sock, args.out)
    except Failed as e:
        sys.stderr.write(f"{PROG}: fatal: {e}\n")
        return e.code
    except (OSError, ValueError) as e:
        what = reason(e) if isinstance(e, OSError) else str(e)
        sys.stderr.write(f"{PROG}: fatal: unable to talk to {sock}: {what}\n")
        return EXIT_TEMP
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
