"""check_dtd: a Nagios/Icinga plugin for the services dtd supervises.

    check_dtd [-s NAME]... [-w RANGE] [-c RANGE] [-u SECONDS] [-r] [-v]
              [-t SECONDS] [--socket PATH] [--scan DIR]

It asks dtd's socket (``GET /v1/services``) and, when no daemon answers,
reads the status files under the scan directory instead: dtd's, or those
of daemontools' ``supervise`` and runit's ``runsv``, which share the
layout. One status line with performance data, and the Monitoring Plugins
exit codes:

    0 OK        every service is where it is wanted
    1 WARNING   paused, on its way down, restarting (in ./finish), up but
                not ready yet (readiness expected), or up for less than
                -u SECONDS (flapping)
    2 CRITICAL  down while wanted up (the number of those is compared
                with -c, default 0, and -w), a named service that does not
                exist, a service no supervisor watches
    3 UNKNOWN   a bad command line, no daemon and no status files, an
                answer that makes no sense, the -t timeout

A service that is down and wanted down (``svc -d``, ``svc -o`` that ran)
is OK. Readiness is checked only where it can mean something: for a
service with s6's ``notification-fd`` file, or all the services checked
with ``-r``, and only when the supervisor reports it (dtd's; daemontools'
and runit's supervisors do not, and their services are not held to it).

-w and -c take the Monitoring Plugins' ranges: ``N`` alerts outside 0..N,
``N:`` below N, ``~:N`` above N, ``M:N`` outside M..N, ``@M:N`` inside.
"""

import argparse
import os
import signal
import sys
import time

from dtd.clients.dtdctl import Connection, Failed, default_socket, from_files, refusal

import dtd
from dtd.diag import reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

PROG = "check_dtd"
EXIT_OK = 0
EXIT_WARNING = 1
EXIT_CRITICAL = 2
EXIT_UNKNOWN = 3
NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
NOTIFICATION_FD = "notification-fd"  # s6's readiness file in the service directory
FIELDS: "dict[str, type | tuple[type, ...]]" = {
    "name": str, "state": str, "want": str, "pid": int, "since": (int, float), "paused": bool}

Record = dict[str, "Any"]


class Unknown(Exception):
    """What makes the answer UNKNOWN, said on the status line."""


class Range:
    """A Monitoring Plugins threshold range: alert when the value is outside
    start..end (inside with a leading @); ~ is minus infinity."""

    def __init__(self, text: str) -> None:
        self.text = text
        spec = text
        self.inside = spec.startswith("@")
        if self.inside:
            spec = spec[1:]
        low, colon, high = spec.rpartition(":") if ":" in spec else ("0", "", spec)
        try:
            self.start = float("-inf") if low == "~" else float(low or "0")
            self.end = float(high) if high else float("inf")
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a range: {text}") from None
        if self.start > self.end or (not colon and high == ""):
            raise argparse.ArgumentTypeError(f"not a range: {text}")

    def alerts(self, value: float) -> bool:
        inside = self.start <= value <= self.end
        return inside if self.inside else not inside


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "Any":
        # argparse exits 2, which a monitoring system reads as CRITICAL
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stdout.write(f"DTD UNKNOWN - {message}\n")
        sys.exit(EXIT_UNKNOWN)


def parser() -> Parser:
    p = Parser(prog=PROG, description="Check the services dtd supervises (a Nagios plugin).")
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {dtd.__version__}")
    p.add_argument("-s", "--service", metavar="NAME", action="append", default=[],
                   help="a service to check (repeat, or NAME,NAME); default all")
    p.add_argument("-w", "--warning", metavar="RANGE", type=Range,
                   help="WARNING when the count of services down but wanted up is outside RANGE")
    p.add_argument("-c", "--critical", metavar="RANGE", type=Range, default=Range("0"),
                   help="CRITICAL likewise (default 0: any)")
    p.add_argument("-u", "--min-uptime", metavar="SECONDS", type=_seconds, default=0.0,
                   help="WARNING when a service has been up for less (flapping)")
    p.add_argument("-r", "--ready", action="store_true",
                   help="WARNING when a service is up but not ready")
    p.add_argument("-t", "--timeout", metavar="SECONDS", type=_seconds, default=10.0,
                   help="UNKNOWN after this long (default 10; 0: none)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="a line for each service after the status line")
    p.add_argument("--socket", metavar="PATH", help="dtd's socket (default as dtdctl's)")
    p.add_argument("--scan", metavar="DIR", default="/etc/service",
                   help="the scan directory read when no daemon answers (default /etc/service)")
    return p


# -- gathering ---------------------------------------------------------------

def from_daemon(conn: Connection) -> list[Record]:
    try:
        code, answer = conn.call("GET", "/v1/services")
    except ValueError:  # JSON, or a chunk size, that does not parse
        raise Unknown("unexpected answer from dtd") from None
    if code != 200:
        raise Unknown(f"dtd answered {code}: {refusal(code, answer)}")
    if not isinstance(answer, list):
        raise Unknown("unexpected answer from dtd")
    for rec in answer:
        if not isinstance(rec, dict) or not all(
                isinstance(rec.get(k), t) for k, t in FIELDS.items()):
            raise Unknown("unexpected answer from dtd")
    records: list[Record] = answer
    return records


def from_status_files(scan: str, names: list[str]) -> list[Record]:
    try:
        records: list[Record] = from_files(scan, list(names))
    except Failed as e:
        raise Unknown(f"no daemon, and {e}") from None
    if not any(os.path.exists(os.path.join(r["directory"], "supervise", "status"))
               for r in records):
        raise Unknown(f"no daemon, and no status files under {scan}")
    return records


def gather(sock: str, scan: str, names: list[str]) -> tuple[list[Record], list[str], bool]:
    """The records of the services asked for, the names not found, and
    whether the records come from the files."""
    try:
        conn = Connection(sock)
    except Failed:
        files = True
        present = [n for n in names if os.path.isdir(os.path.join(scan, n))]
        if names and not present:
            raise Unknown(f"no daemon, and no status files under {scan}")
        records = from_status_files(scan, present)
    else:
        files = False
        try:
            records = from_daemon(conn)
        except Failed as e:
            raise Unknown(str(e)) from None
        finally:
            conn.close()
        if names:
            byname = {r["name"]: r for r in records}
            records = [byname[n] for n in names if n in byname]
    found = {r["name"] for r in records}
    return records, [n for n in names if n not in found], files


def readiness(rec: Record, files: bool) -> bool | None:
    """Whether the service said it is ready; None when its supervisor does
    not tell (the info file is dtd's worker's alone: without it, a record
    built from the files shows a default, not what the service said)."""
    if not files:
        return bool(rec["ready"]) if "ready" in rec else None
    from dtd import info  # only on the fallback's path

    try:
        got = info.read(os.path.join(rec["directory"], info.INFO))
    except OSError:
        return None
    return None if got is None else got.ready


# -- judging -----------------------------------------------------------------

class Verdict:
    def __init__(self) -> None:
        self.groups: dict[str, list[str]] = {}
        self.counts = {"up": 0, "down": 0, "off": 0, "paused": 0, "not_ready": 0}
        self.state = EXIT_OK
        self.min_uptime: float | None = None
        self.lines: list[str] = []

    def note(self, state: int, group: str, what: str) -> None:
        self.state = max(self.state, state)
        self.groups.setdefault(group, []).append(what)


def _shown(name: str) -> str:
    # "|" would start the performance data; a newline, the long output
    return "".join("?" if c in "|\n\r" or not c.isprintable() else c for c in name)


def judge(records: list[Record], missing: list[str], files: bool, args: argparse.Namespace,
          now: float) -> Verdict:
    v = Verdict()
    for name in missing:
        v.note(EXIT_CRITICAL, "missing", _shown(name))
    for rec in records:
        name = _shown(rec["name"])
        state, want = rec["state"], rec["want"]
        age = max(0.0, now - float(rec["since"])) if rec["since"] else 0.0
        v.lines.append(f"{name}: {state}" + (f" pid {rec['pid']}" if rec["pid"] else "")
                       + f", {int(age)}s, want {want}" + (", paused" if rec["paused"] else ""))
        if not rec.get("supervised", True):
            v.note(EXIT_CRITICAL, "unsupervised", name)
            if state != "up":
                continue
        if state == "up":
            v.counts["up"] += 1
            v.min_uptime = age if v.min_uptime is None else min(v.min_uptime, age)
            if rec["paused"]:
                v.counts["paused"] += 1
                v.note(EXIT_WARNING, "paused", name)
            if want == "down":
                v.note(EXIT_WARNING, "stopping", name)
            expects = args.ready or os.path.exists(os.path.join(rec.get("directory", ""),
                                                                NOTIFICATION_FD))
            if expects and readiness(rec, files) is False:
                v.counts["not_ready"] += 1
                v.note(EXIT_WARNING, "not ready", name)
            if age < args.min_uptime:
                v.note(EXIT_WARNING, "flapping", f"{name} (up {int(age)}s)")
        elif want == "up":
            if state == "finish":
                v.note(EXIT_WARNING, "restarting", name)
                continue
            v.counts["down"] += 1
            why = []
            if rec.get("exit_code") is not None:
                code = rec["exit_code"]
                why.append(f"signal {rec.get('exit_signal', 0)}" if code == -1 else f"exit {code}")
            if rec.get("backoff"):
                why.append(f"backoff {rec['backoff']:g}s")
            v.groups.setdefault("down", []).append(name + (f" ({', '.join(why)})" if why else ""))
        else:
            v.counts["off"] += 1
    down = v.counts["down"]
    if args.critical.alerts(down):
        v.state = max(v.state, EXIT_CRITICAL)
    elif args.warning is not None and args.warning.alerts(down):
        v.state = max(v.state, EXIT_WARNING)
    return v


def _services(n: int) -> str:
    return "service" if n == 1 else "services"


ORDER = ("missing", "unsupervised", "down", "restarting", "stopping", "paused", "not ready",
         "flapping")


def status_line(v: Verdict, args: argparse.Namespace, total: int) -> str:
    c = v.counts
    if not v.groups:
        text = f"{c['up']} {_services(c['up'])} up" if c["up"] or not c["off"] else ""
        if c["off"]:
            text += (", " if text else "") + f"{c['off']} down as wanted"
        text = text if total else "no services"
    else:
        text = f"{c['up']} of {total} {_services(total)} up; " + "; ".join(
            f"{g}: {', '.join(v.groups[g])}" for g in ORDER if g in v.groups)
    warn = args.warning.text if args.warning is not None else ""
    perf = [f"services={total};;;0", f"up={c['up']};;;0;{total}",
            f"down={c['down']};{warn};{args.critical.text};0;{total}",
            f"off={c['off']};;;0;{total}", f"paused={c['paused']};;;0;{total}",
            f"not_ready={c['not_ready']};;;0;{total}"]
    if v.min_uptime is not None:
        limit = f"{args.min_uptime:g}:" if args.min_uptime else ""
        perf.append(f"uptime_min={v.min_uptime:.3f}s;{limit};;0")
    return f"DTD {NAMES[v.state]} - {text} | {' '.join(perf)}"


class TimedOut(Exception):
    pass


def _alarm(signum: int, frame: "FrameType | None") -> None:
    raise TimedOut


def check(args: argparse.Namespace) -> tuple[int, str]:
    names = [n for arg in args.service for n in arg.split(",") if n]
    sock = args.socket or default_socket()
    try:
        records, missing, files = gather(sock, args.scan, names)
    except Unknown as e:
        return EXIT_UNKNOWN, f"DTD UNKNOWN - {_shown(str(e))}"
    except (OSError, ValueError, UnicodeError) as e:  # a connection broken, or garbage
        why = reason(e) if isinstance(e, OSError) and e.errno else str(e) or type(e).__name__
        return EXIT_UNKNOWN, f"DTD UNKNOWN - unable to talk to {_shown(sock)}: {_shown(why)}"
    v = judge(records, missing, files, args, time.time())
    text = status_line(v, args, len(records) + len(missing))
    if args.verbose:
        text += "".join("\n" + line for line in v.lines)
    return v.state, text


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.timeout:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        code, text = check(args)
    except TimedOut:
        code, text = EXIT_UNKNOWN, f"DTD UNKNOWN - no answer within {args.timeout:g}s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    sys.stdout.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
