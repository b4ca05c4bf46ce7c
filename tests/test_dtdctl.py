"""dtdctl against a real dtd: status (and without a daemon, from the files),
the control verbs, watch, wait on events, metrics, exit codes."""

import json
import os
import selectors
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Procs, ours, wait_for
from test_api import (  # noqa: F401  (daemon is a fixture)
    Daemon,
    Subscriber,
    call,
    daemon,
    release,
    start_with,
    under_reference_supervise,
    up_pid,
    write_info,
)

from dtd import info, status
from dtd import inotify as ino

Result = tuple[int, str, str]


def dtdctl(d: Daemon, *args: str, timeout: float = 30) -> Result:
    p = subprocess.run([ours("dtdctl"), "--socket", str(d.sock), *args], capture_output=True,
                       timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


def test_status_table_and_json_match_the_api(daemon: Daemon) -> None:
    start_with(daemon, "web", "db")
    wait_for(lambda: up_pid(daemon.scan / "web" / "log"), what="web/log up")
    daemon.service("idle", down=True)
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/idle")[0] == 200, what="idle listed")

    def same() -> bool:
        # a new service's worker is still writing its files: compared once
        # nothing changed around dtdctl's look
        before = call(daemon.sock, "GET", "/v1/services")[1]
        code, out, err = dtdctl(daemon, "status", "--json")
        assert (code, err) == (0, "")
        return bool(json.loads(out) == before == call(daemon.sock, "GET", "/v1/services")[1])
    wait_for(same, what="dtdctl status --json as the API says")
    code, out, err = dtdctl(daemon, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "SINCE", "NOTES"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"db", "idle", "web", "web/log"}
    assert rows["db"][1:3] == ["up", str(up_pid(daemon.scan / "db"))]
    assert rows["idle"][1:3] == ["down", "-"]
    # names given, a logger's among them, in the order given
    code, out, _ = dtdctl(daemon, "status", "web/log", "db", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["web/log", "db"]
    code, out, err = dtdctl(daemon, "status", "nope")
    assert (code, out, err) == (100, "", "dtdctl: fatal: no such service: nope\n")


def test_status_without_a_daemon_reads_the_files(daemon: Daemon) -> None:
    start_with(daemon, "a", "web")
    daemon.service("idle", down=True)
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/idle")[1].get("supervised"),
             what="idle supervised")
    status.send(str(daemon.scan / "a"), b"p")
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/a")[1]["paused"], what="a paused")
    _, through_api, _ = dtdctl(daemon, "status", "--json")
    gone = daemon.top / "nowhere.sock"
    p = subprocess.run([ours("dtdctl"), "--socket", str(gone), "--scan", str(daemon.scan),
                        "status", "--json"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    from_files = json.loads(p.stdout)
    # the same records, less what only the root counts
    api = [{k: v for k, v in r.items() if k != "starts"} for r in json.loads(through_api)]
    assert from_files == api
    p = subprocess.run([ours("dtdctl"), "--socket", str(gone), "--scan", str(daemon.scan),
                        "status", "a"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.splitlines()[1].split()[1] == "up"
    assert "paused" in p.stdout


def test_status_shows_readiness_backoff_and_the_last_exit(daemon: Daemon) -> None:
    web = under_reference_supervise(daemon, "web")
    db = under_reference_supervise(daemon, "db")
    daemon.start()
    write_info(web, info.Info(ready=True, ready_since=time.time() - 5, status_text="3 clients",
                              fails=2, backoff=4.0))
    status.send(str(db), b"d")
    wait_for(lambda: up_pid(db) == 0, what="db down")
    write_info(db, info.Info(exit_code=-1, exit_signal=15, stopped=True))
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/web")[1]["ready"]
             and call(daemon.sock, "GET", "/v1/services/db")[1]["stopped"], what="info read")
    code, out, err = dtdctl(daemon, "status")
    assert (code, err) == (0, "")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    notes = rows["web"].split("  ")[-1].split(", ")
    assert notes[0] in ("ready 5s", "ready 6s")
    assert notes[1:] == ['"3 clients"', "backoff 4s", "2 failed runs"]
    assert rows["db"].split()[1:3] == ["down", "-"]
    assert rows["db"].endswith("  normally up, killed by SIGTERM, stopped")
    code, out, _ = dtdctl(daemon, "status", "--json", "web")
    rec = json.loads(out)[0]
    assert (rec["ready"], rec["status_text"], rec["fails"], rec["backoff"]) == (True, "3 clients", 2, 4.0)
    # without the daemon, from the files: the same facts
    p = subprocess.run([ours("dtdctl"), "--socket", str(daemon.top / "nowhere.sock"), "--scan",
                        str(daemon.scan), "status", "--json"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    api = [{k: v for k, v in r.items() if k != "starts"}
           for r in call(daemon.sock, "GET", "/v1/services")[1]]
    assert json.loads(p.stdout) == api


def test_control_verbs(daemon: Daemon) -> None:
    start_with(daemon, "a", "b")
    code, out, err = dtdctl(daemon, "down", "a", "b")
    assert (code, out, err) == (0, "", "")
    for n in ("a", "b"):
        wait_for(lambda: up_pid(daemon.scan / n) == 0, what=f"{n} down")
    assert dtdctl(daemon, "up", "a")[0] == 0
    wait_for(lambda: up_pid(daemon.scan / "a"), what="a up")
    assert dtdctl(daemon, "pause", "a")[0] == 0
    wait_for(lambda: (st := status.read(str(daemon.scan / "a"))) is not None and st.paused, what="paused")
    assert dtdctl(daemon, "cont", "a")[0] == 0
    wait_for(lambda: (st := status.read(str(daemon.scan / "a"))) is not None and not st.paused,
             what="continued")
    # an unknown name stops at it: the ones before it were done
    code, _, err = dtdctl(daemon, "once", "a", "nope", "b")
    assert (code, err) == (100, "dtdctl: fatal: no such service: nope\n")
    wait_for(lambda: (st := status.read(str(daemon.scan / "a"))) is not None
             and st.want == status.WANT_ONCE, what="a once")
    assert status.read(str(daemon.scan / "b")).want == status.WANT_DOWN  # type: ignore[union-attr]


def test_exit_codes_without_a_daemon_and_for_usage(daemon: Daemon) -> None:
    gone = str(daemon.top / "nowhere.sock")
    for args in (["down", "a"], ["watch"], ["wait", "up", "a"], ["metrics"]):
        p = subprocess.run([ours("dtdctl"), "--socket", gone, *args], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 111, args
        assert p.stderr == f"dtdctl: fatal: unable to connect to {gone}: file does not exist\n"
    for args in ([], ["bogus"], ["down"], ["wait", "sideways", "a"], ["wait", "up"],
                 ["status", "--nope"], ["wait", "up", "a", "--timeout", "x"]):
        p = subprocess.run([ours("dtdctl"), *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 100, args
        assert p.stdout == "" and "usage" in p.stderr
    p = subprocess.run([ours("dtdctl"), "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("usage: dtdctl")


def test_wait_returns_promptly_and_times_out(daemon: Daemon, procs: Procs) -> None:
    start_with(daemon, "a", "b")
    # already there: at once
    t0 = time.monotonic()
    assert dtdctl(daemon, "wait", "up", "a", "b", "--timeout", "10")[0] == 0
    assert time.monotonic() - t0 < 2
    # never comes: exit 1 at the timeout
    t0 = time.monotonic()
    assert dtdctl(daemon, "wait", "down", "a", "--timeout", "0.5")[0] == 1
    assert 0.5 <= time.monotonic() - t0 < 3
    # comes while waiting
    w = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "wait", "down", "a", "b",
                     "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    status.send(str(daemon.scan / "a"), b"d")
    wait_for(lambda: up_pid(daemon.scan / "a") == 0, what="a down")
    # b is still up: the waiter must still be waiting
    assert w.poll() is None
    status.send(str(daemon.scan / "b"), b"d")
    wait_for(lambda: up_pid(daemon.scan / "b") == 0, what="b down")
    t_down = time.monotonic()
    assert w.wait(timeout=10) == 0
    assert time.monotonic() - t_down < 1.0
    # a service that does not exist yet is waited for until it comes up
    w = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "wait", "up", "later",
                     "--timeout", "20"])
    daemon.service("later")
    assert w.wait(timeout=15) == 0


def subscribed(pid: int) -> bool:
    """The waiter has its connection to the daemon: past the interpreter's
    start, which is most of its time; what is left before it waits (the
    subscription's answer, the look) is a round trip or two."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return True  # gone already: wait() says how
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
        except FileNotFoundError:
            pass
    return False


def gap_after(w: "subprocess.Popen[bytes]", change: Callable[[], None],
              changed_at: Callable[[], float]) -> float:
    """Seconds from a state change (the time the worker wrote for it) to
    the waiter's exit, which must be 0."""
    wait_for(lambda: subscribed(w.pid), what="the waiter connected")
    change()
    assert w.wait(timeout=10) == 0, w.stderr.read() if w.stderr else ""
    exited = time.time()
    return exited - changed_at()


def since(d: Path) -> float:
    st = status.read(str(d))
    assert st is not None
    return st.since


def test_wait_returns_within_50ms_of_the_change(daemon: Daemon, procs: Procs) -> None:
    start_with(daemon, "a")
    ready_dir = under_reference_supervise(daemon, "r")
    a = daemon.scan / "a"
    gaps: dict[str, list[float]] = {"down": [], "up": [], "ready": []}

    def waiter(state: str, name: str) -> "subprocess.Popen[bytes]":
        return procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "wait", state, name,
                            "--timeout", "20"], stderr=subprocess.PIPE)

    at = [0.0]

    def become_ready() -> None:
        at[0] = time.time()
        write_info(ready_dir, info.Info(ready=True, ready_since=at[0]))

    for _ in range(5):
        w = waiter("down", "a")
        gaps["down"].append(gap_after(w, lambda: status.send(str(a), b"d"), lambda: since(a)))
        w = waiter("up", "a")
        gaps["up"].append(gap_after(w, lambda: status.send(str(a), b"u"), lambda: since(a)))
        # readiness as the worker writes it; under daemontools' supervise
        # only the test writes the file, so the time of the change is known
        w = waiter("ready", "r")
        gaps["ready"].append(gap_after(w, become_ready, lambda: at[0]))
        write_info(ready_dir, info.Info())
        wait_for(lambda: not call(daemon.sock, "GET", "/v1/services/r")[1]["ready"],
                 what="r not ready")
    shown = {k: [round(g * 1000, 1) for g in v] for k, v in gaps.items()}
    print(f"\ndtdctl wait, change to exit, ms: {shown}")
    for state, g in gaps.items():
        # events, not polling: 5 to 15 ms on an idle machine. The goal is
        # 50 ms; on a loaded two-core machine a run can be descheduled for
        # tens of ms, so the best run must make it, the median twice that
        assert min(g) < 0.050, (state, shown)
        assert statistics.median(g) < 0.100, (state, shown)
        assert 0 <= max(g) < 1.0, (state, shown)


def test_wait_ready_for_services_that_say_so(daemon: Daemon, procs: Procs) -> None:
    """The worker's readiness end to end: s6's notification-fd and
    systemd-notify, each run held until the test lets it say it."""
    for name, say in (("sd", '/usr/bin/systemd-notify --ready --status="serving 3"'),
                      ("fd", "echo >&3")):
        daemon.service(name, f"read go < ../{name}.go\n{say}\nexec sleep 1000")
        os.mkfifo(daemon.scan / f"{name}.go")
    (daemon.scan / "fd" / "notification-fd").write_text("3\n")
    daemon.start()
    for d in (daemon.scan / "sd", daemon.scan / "fd"):
        wait_for(lambda d=d: up_pid(d), what=f"{d.name} up")
    assert dtdctl(daemon, "wait", "ready", "sd", "fd", "--timeout", "0.2")[0] == 1
    watcher = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "watch"],
                          stdout=subprocess.PIPE)
    assert watcher.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(watcher.stdout, selectors.EVENT_READ)
    # subscribed once it shows a change: pause and continue until it does
    verb = "pause"
    while not sel.select(0.2):
        assert dtdctl(daemon, verb, "sd")[0] == 0
        verb = "cont" if verb == "pause" else "pause"
    sel.close()
    assert dtdctl(daemon, "cont", "sd")[0] == 0
    w = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "wait", "ready", "sd", "fd",
                     "--timeout", "20"], stderr=subprocess.PIPE)
    wait_for(lambda: subscribed(w.pid), what="the waiter connected")
    release(daemon.scan / "sd.go")
    # one of two: still waiting
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/sd")[1]["ready"], what="sd ready")
    assert w.poll() is None

    def ready_since() -> float:
        facts = info.read(str(daemon.scan / "fd" / info.INFO))
        assert facts is not None and facts.ready
        return facts.ready_since
    gap = gap_after(w, lambda: release(daemon.scan / "fd.go"), ready_since)
    print(f"\ndtdctl wait ready, notification-fd newline to exit: {gap * 1000:.1f} ms")
    assert gap < 0.5
    code, out, _ = dtdctl(daemon, "status", "sd", "fd")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["sd", "up"] and ', "serving 3"' in lines[1]
    assert lines[1].split("  ")[-1].startswith("ready ")
    assert lines[2].split()[:2] == ["fd", "up"] and lines[2].split("  ")[-1] in ("ready 0s", "ready 1s")
    sd = json.loads(dtdctl(daemon, "status", "--json", "sd")[1])[0]
    assert (sd["ready"], sd["status_text"]) == (True, "serving 3")
    # a restart ends readiness until the run says it again
    status.send(str(daemon.scan / "fd"), b"t")
    wait_for(lambda: not call(daemon.sock, "GET", "/v1/services/fd")[1]["ready"], what="fd not ready")
    # the watcher showed fd becoming ready, and then not ready any more
    fd_lines = []
    while len(fd_lines) < 2 or fd_lines[-1].endswith(" ready\n"):
        line = watcher.stdout.readline().decode()
        assert line, fd_lines
        if " fd changed: " in line:
            fd_lines.append(line)
    assert fd_lines[0].endswith(" want up ready\n") and " up pid " in fd_lines[0], fd_lines
    assert not any(x.endswith(" ready\n") for x in fd_lines[1:]), fd_lines
    assert dtdctl(daemon, "wait", "ready", "fd", "--timeout", "0.2")[0] == 1
    assert dtdctl(daemon, "wait", "up", "fd", "--timeout", "10")[0] == 0


def test_backoff_and_failures_shown(daemon: Daemon) -> None:
    """A run that keeps failing under restart-backoff (the worker's): the
    count and the delay in the event stream, the metrics and the status."""
    d = daemon.service("bad", "exit 1")
    (d / "restart-backoff").write_text("500 4000\n")
    daemon.start()
    sub = Subscriber(daemon.sock)
    # 0.5 s, 1 s, then 2 s: beyond the one-second rule, so held back. The
    # worker writes info before status: the event of the info file can
    # still show the run up, the one of the status file follows
    ev = sub.until(lambda e: e["service"]["name"] == "bad" and e["service"]["backoff"] > 1
                   and e["service"]["state"] == "down")
    got = ev["service"]
    assert got["fails"] >= 3 and got["exit_code"] == 1

    def steady() -> tuple[dict[str, Any], str, str] | None:
        """The record, the metrics and dtdctl's line, if the service did
        not change while they were read (it restarts every few seconds)."""
        before = call(daemon.sock, "GET", "/v1/services/bad")[1]
        metrics = call(daemon.sock, "GET", "/metrics")[1].decode()
        code, out, _ = dtdctl(daemon, "status", "bad")
        assert code == 0
        same = before == call(daemon.sock, "GET", "/v1/services/bad")[1]
        return (before, metrics, out) if same and before["backoff"] else None
    look = wait_for(steady, what="a steady look")
    assert isinstance(look, tuple)
    now, metrics, out = look
    assert f'dtd_service_fails{{service="bad"}} {now["fails"]}\n' in metrics
    assert f'dtd_service_backoff_seconds{{service="bad"}} {now["backoff"]!r}\n' in metrics
    notes = out.splitlines()[1].split("  ")[-1].split(", ")
    assert f"backoff {now['backoff']:.3g}s" in notes and "exited 1" in notes
    assert f"{now['fails']} failed runs" in notes
    # brought down: nothing held back any more
    assert dtdctl(daemon, "down", "bad")[0] == 0
    sub.until(lambda e: e["service"]["name"] == "bad" and e["service"]["want"] == "down"
              and e["service"]["backoff"] == 0)
    sub.close()


def test_wait_times_out_with_exit_1(daemon: Daemon) -> None:
    start_with(daemon, "a")
    daemon.service("idle", down=True)
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/idle")[1].get("supervised"),
             what="idle supervised")
    for args, timeout in ((["up", "idle"], 1.0), (["ready", "a"], 0.5), (["down", "a", "idle"], 0.3),
                          (["up", "nosuch"], 0.2), (["up", "a", "idle"], 0.0)):
        t0 = time.monotonic()
        code, out, err = dtdctl(daemon, "wait", *args, "--timeout", str(timeout))
        elapsed = time.monotonic() - t0
        assert (code, out) == (1, ""), (args, err)
        missing = [n for n in args[1:] if not (args[0] == "down" and n == "idle")
                   and not (args[0] == "up" and n == "a")]
        assert err == f"dtdctl: timed out: not {args[0]}: {' '.join(missing)}\n"
        # the interpreter's start comes before the clock starts: a little more
        assert timeout <= elapsed < timeout + 0.5, (args, elapsed)
    # reached already: --timeout 0 only looks
    assert dtdctl(daemon, "wait", "up", "a", "--timeout", "0")[0] == 0
    assert dtdctl(daemon, "wait", "down", "idle", "--timeout", "0")[0] == 0
    for bad in ("-1", "nan", "inf", "1e99", "", "0x10"):
        code, out, err = dtdctl(daemon, "wait", "up", "a", "--timeout", bad)
        assert (code, out) == (100, "") and err.startswith(f"dtdctl: usage error: bad timeout {bad}\n")


def test_wait_up_for_a_flapping_service_returns_at_a_start(daemon: Daemon) -> None:
    # ./run exits soon: supervise starts it again each second. Up is a
    # start seen, as s6-svwait -u counts "u" events; ready never comes. A
    # run lasts 50 ms: the root sees a start in the status file, and one
    # that ends within a millisecond can come and go between two of its
    # reads (two such in a row took 3 s once, in CI). Each wait begins
    # while the service is down, so that it ends at a start of its own.
    daemon.service("flap", "sleep 0.05; exit 3")
    daemon.start()
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/flap")[1].get("starts"), what="a start")
    for _ in range(3):
        wait_for(lambda: call(daemon.sock, "GET", "/v1/services/flap")[1]["state"] != "up",
                 what="down between two starts")
        t0 = time.monotonic()
        code, _, err = dtdctl(daemon, "wait", "up", "flap", "--timeout", "5")
        assert (code, err) == (0, "")
        assert time.monotonic() - t0 < 2.5  # at most a second between starts
    code, _, err = dtdctl(daemon, "wait", "ready", "flap", "--timeout", "1.5")
    assert (code, err) == (1, "dtdctl: timed out: not ready: flap\n")
    # it was flapping all along, each wait a different start
    assert call(daemon.sock, "GET", "/v1/services/flap")[1]["starts"] >= 4


def test_watch_prints_each_change(daemon: Daemon, procs: Procs) -> None:
    start_with(daemon, "a")
    human = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "watch"], stdout=subprocess.PIPE)
    raw = procs.start([ours("dtdctl"), "--socket", str(daemon.sock), "watch", "--json"],
                      stdout=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    assert human.stdout is not None and raw.stdout is not None
    sel.register(human.stdout, selectors.EVENT_READ)
    sel.register(raw.stdout, selectors.EVENT_READ)
    # the watchers subscribe in their own time: pause and continue until
    # both have shown something
    ready: set[int] = set()
    deadline = time.monotonic() + 15
    verb = "pause"
    while len(ready) < 2:
        assert time.monotonic() < deadline, "no event shown"
        assert dtdctl(daemon, verb, "a")[0] == 0
        verb = "cont" if verb == "pause" else "pause"
        for key, _ in sel.select(0.3):
            ready.add(key.fd)
    sel.close()
    line = human.stdout.readline().decode()
    assert " a changed: up pid " in line and line.endswith("\n")
    ev = json.loads(raw.stdout.readline())
    assert ev["event"] == "changed" and ev["service"]["name"] == "a"


def test_metrics_to_stdout_and_atomically_to_a_file(daemon: Daemon) -> None:
    start_with(daemon, "a")
    code, out, _ = dtdctl(daemon, "metrics")
    assert code == 0
    assert 'dtd_service_up{service="a"} 1\n' in out
    target = daemon.top / "dtd.prom"
    code, out, _ = dtdctl(daemon, "metrics", "-o", str(target))
    assert (code, out) == (0, "")
    text = target.read_text()
    assert text.startswith("# HELP dtd_service_up ") and 'dtd_services{state="up"} 1\n' in text
    assert [p.name for p in daemon.top.iterdir() if p.name.startswith("dtd.prom")] == ["dtd.prom"]
    code, _, err = dtdctl(daemon, "metrics", "-o", str(daemon.top / "no" / "such" / "x.prom"))
    assert code == 111 and err.startswith("dtdctl: fatal: unable to write ")
    assert not list((daemon.top).glob("*.tmp"))


def test_metrics_file_is_for_the_textfile_collector(daemon: Daemon) -> None:
    """node_exporter's textfile collector reads DIR/*.prom at any moment:
    the file must be whole (written aside in the same directory, then
    renamed over), in the text format, with HELP and TYPE, no timestamps."""
    start_with(daemon, "a", "web")
    daemon.service("idle", down=True)
    wait_for(lambda: call(daemon.sock, "GET", "/v1/services/idle")[0] == 200, what="idle listed")
    textfiles = daemon.top / "textfile"
    textfiles.mkdir()
    target = textfiles / "dtd.prom"
    watch = ino.Inotify()
    try:
        watch.add_watch(str(textfiles), ino.IN_CREATE | ino.IN_CLOSE_WRITE | ino.IN_MOVED_FROM
                        | ino.IN_MOVED_TO | ino.IN_DELETE)
        for _ in range(2):  # made, then replaced
            assert dtdctl(daemon, "metrics", "-o", str(target)) == (0, "", "")
        seen = [(mask, name) for _, mask, name in watch.read()]
    finally:
        os.close(watch.fd)
    assert [p.name for p in textfiles.iterdir()] == ["dtd.prom"]
    # the target itself is never opened for writing: it only appears by rename
    assert [m for m, name in seen if name == "dtd.prom"] == [ino.IN_MOVED_TO] * 2
    aside = [name for m, name in seen if name != "dtd.prom"]
    assert len(set(aside)) == 2 and all(n.startswith("dtd.prom.") and n.endswith(".tmp")
                                        for n in aside), seen
    for name in set(aside):  # one dtdctl each: made, written, renamed
        assert [m for m, n in seen if n == name] == [ino.IN_CREATE, ino.IN_CLOSE_WRITE,
                                                    ino.IN_MOVED_FROM]
    text = target.read_text()
    assert text.endswith("\n")
    families: dict[str, str] = {}
    helped: set[str] = set()
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped and len(line.split(None, 3)) == 4, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in helped and name not in families and kind in ("gauge", "counter")
            families[name] = kind
            current = name
        else:
            # name{labels} value, and no timestamp: the collector refuses those
            name, labels_value = line.split("{", 1)
            labels, value = labels_value.rsplit("} ", 1)
            assert name == current, line
            assert " " not in value and float(value) >= 0, line
            assert all(part.count('="') == 1 for part in labels.split('",')), line
    assert families.keys() >= {"dtd_service_up", "dtd_service_ready", "dtd_service_fails",
                               "dtd_service_backoff_seconds", "dtd_services", "dtd_build_info"}
    assert families.keys() == helped
    assert 'dtd_service_up{service="idle"} 0\n' in text and 'dtd_service_up{service="web/log"} 1\n' in text
    # a counter's name ends in _total, as the format asks
    assert all(n.endswith("_total") for n, kind in families.items() if kind == "counter")
    assert "counter" in families.values()
