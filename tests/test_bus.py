# ruff: noqa: F811 (the fixtures imported from busfixture are arguments here)
"""The D-Bus service, through real clients (busctl, gdbus, dbus-monitor) on a
private dbus-daemon: objects and escaping, properties, one-call listings,
PropertiesChanged after svc -d, control, bad input, callers of another uid,
the root killed and started again, no bus at all."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from busfixture import (  # noqa: F401
    Bus,
    as_nobody,
    needs_dbus,
    needs_policy,
    needs_root,
    session_bus,
    system_bus,
)
from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from dbus_fast import Message
from dbus_fast.aio import MessageBus
from test_api import release

from dtd import info, status
from dtd.bus import escape

pytestmark = needs_dbus

NAME = "org.dtd.Supervise1"
MANAGER = "/org/dtd/Supervise1"
MIFACE = "org.dtd.Supervise1.Manager"
SIFACE = "org.dtd.Supervise1.Service"
BUSCTL = shutil.which("busctl") or "/usr/bin/busctl"
GDBUS = shutil.which("gdbus") or "/usr/bin/gdbus"
DBUS_MONITOR = shutil.which("dbus-monitor") or "/usr/bin/dbus-monitor"
PROPERTIES = {"Name", "Directory", "State", "Pid", "Since", "Paused", "Want", "NormallyUp",
              "Starts", "Ready", "ReadySince", "StatusText", "ExitCode", "ExitSignal", "Fails",
              "Backoff", "Stopped"}


def path_of(name: str) -> str:
    return f"{MANAGER}/service/{escape(name)}"


def busctl(bus: Bus, *args: str, nobody: bool = False) -> "subprocess.CompletedProcess[str]":
    argv = [BUSCTL, f"--address={bus.address}", *args]
    return subprocess.run(as_nobody(argv) if nobody else argv, capture_output=True, text=True,
                          timeout=30, check=False)


def gdbus_call(bus: Bus, path: str, member: str, *args: str,
               nobody: bool = False) -> "subprocess.CompletedProcess[str]":
    argv = [GDBUS, "call", "--address", bus.address, "--dest", NAME, "--object-path", path,
            "--method", member, *args]
    return subprocess.run(as_nobody(argv) if nobody else argv, capture_output=True, text=True,
                          timeout=30, check=False)


def dbus_send(bus: Bus, path: str, member: str, *args: str) -> "subprocess.CompletedProcess[str]":
    """dbus-send sends the types it is given (gdbus converts arguments to
    what the introspection asks) and names the error it gets."""
    argv = ["/usr/bin/dbus-send", f"--bus={bus.address}", "--print-reply", f"--dest={NAME}",
            path, member, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def prop(bus: Bus, path: str, iface: str, name: str, nobody: bool = False) -> object:
    r = busctl(bus, "--json=short", "get-property", NAME, path, iface, name, nobody=nobody)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["data"]


def call_json(bus: Bus, path: str, iface: str, member: str, *args: str) -> object:
    r = busctl(bus, "--json=short", "call", NAME, path, iface, member, *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["data"]


def record(d: Path) -> tuple[int, bool, int]:
    try:
        st = status.read(str(d))
    except OSError:
        return (0, False, 0)
    return (st.pid, st.paused, st.want) if st else (0, False, 0)


def up_pid(d: Path) -> int:
    return record(d)[0]


def start_root(procs: Procs, scan: Path, bus: Bus, *extra: str) -> "subprocess.Popen[bytes]":
    with open(scan.parent / "root.out", "ab") as out:
        p = procs.start([ours("dtd"), "--scan", str(scan), "--socket", "none", "--bus", bus.kind,
                         *extra], stdout=out, stderr=out, env=bus.env())
    return p


def serving(bus: Bus, pid: int) -> bool:
    """The name is owned by the root with that pid."""
    r = busctl(bus, "--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
               "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", NAME)
    return r.returncode == 0 and json.loads(r.stdout)["data"] == [pid]


def services(scan: Path) -> None:
    make_service(scan / "web-1", "exec sleep 1000")
    make_service(scan / "web-1" / "log", "exec cat >/dev/null")
    make_service(scan / "9lives", "exec sleep 1000")


def ready(procs: Procs, scan: Path, bus: Bus) -> "subprocess.Popen[bytes]":
    services(scan)
    root = start_root(procs, scan, bus)
    for d in ("web-1", "web-1/log", "9lives"):
        wait_for(lambda d=d: up_pid(scan / d), what=f"{d} up")
    wait_for(lambda: serving(bus, root.pid), what="the name owned")
    # every service object published with its running pid
    wait_for(lambda: all(prop(bus, path_of(d), SIFACE, "Pid") == up_pid(scan / d)
                         for d in ("web-1", "web-1/log", "9lives")), what="pids on the bus")
    return root


def monitor(procs: Procs, bus: Bus, out: Path, *argv: str) -> None:
    with open(out, "wb") as f:
        procs.start([*argv], stdout=f, stderr=subprocess.STDOUT)


def until_heard(paused: Path, *outputs: Path) -> None:
    """Pause and continue a service until every monitor has printed a
    change of Paused: a monitor gives no sign of when its match is in
    place, and a change made before that is not shown."""
    flip = True

    def heard() -> bool:
        nonlocal flip
        if all("Paused" in out.read_text() for out in outputs):
            return True
        subprocess.run([ours("svc"), "-p" if flip else "-c", str(paused)], check=True)
        flip = not flip
        return False
    wait_for(heard, interval=0.1, what="the monitors listening")


def test_escape_is_systemds() -> None:
    assert escape("web") == "web"
    assert escape("web-1") == "web_2d1"
    assert escape("web/log") == "web_2flog"
    assert escape("9lives") == "_39lives"
    assert escape("a9") == "a9"
    assert escape("") == "_"
    assert escape("a_b") == "a_5fb"  # so that escaping cannot collide
    assert escape("é") == "_c3_a9"
    assert escape("\udcff") == "_ff"  # a non-UTF-8 byte of a file name


def test_objects_introspection_and_properties(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    tree = busctl(session_bus, "tree", "--list", NAME)
    assert tree.returncode == 0, tree.stderr
    assert set(tree.stdout.split()) >= {
        MANAGER, f"{MANAGER}/service/web_2d1", f"{MANAGER}/service/web_2d1_2flog",
        f"{MANAGER}/service/_39lives"}
    intro = busctl(session_bus, "introspect", NAME, MANAGER)
    assert intro.returncode == 0, intro.stderr
    for member in ("ListServices", "GetService", "Rescan", "Up", "Exit", "ServiceAdded",
                   "ServiceRemoved", "ScanDirectory", "Version", "GetManagedObjects",
                   "InterfacesAdded"):
        assert f".{member} " in intro.stdout, member
    g = subprocess.run([GDBUS, "introspect", "--address", session_bus.address, "--dest", NAME,
                        "--object-path", path_of("web-1/log")],
                       capture_output=True, text=True, timeout=30, check=False)
    assert g.returncode == 0, g.stderr
    assert f"interface {SIFACE} {{" in g.stdout
    for member in ("Up()", "Continue()", "Terminate()", "Exit()"):
        assert member in g.stdout
    for p in ("readonly s Name", "readonly s Directory", "readonly s State", "readonly u Pid",
              "readonly d Since", "readonly b Paused", "readonly s Want", "readonly b NormallyUp",
              "readonly t Starts", "readonly b Ready", "readonly d ReadySince",
              "readonly s StatusText", "readonly i ExitCode", "readonly u ExitSignal",
              "readonly u Fails", "readonly d Backoff", "readonly b Stopped"):
        assert p in g.stdout, p
    log = scan / "web-1" / "log"
    assert prop(session_bus, path_of("web-1/log"), SIFACE, "Name") == "web-1/log"
    assert prop(session_bus, path_of("web-1/log"), SIFACE, "Directory") == str(log)
    assert prop(session_bus, path_of("web-1/log"), SIFACE, "State") == "up"
    assert prop(session_bus, path_of("web-1/log"), SIFACE, "Pid") == up_pid(log)
    assert prop(session_bus, path_of("web-1/log"), SIFACE, "Starts") == 1
    assert prop(session_bus, MANAGER, MIFACE, "ScanDirectory") == str(scan)
    assert prop(session_bus, MANAGER, MIFACE, "Version") == __import__("dtd").__version__


def test_listings_in_one_call(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    rows = call_json(session_bus, MANAGER, MIFACE, "ListServices")
    assert isinstance(rows, list)
    listed = {r[0]: r for r in rows[0]}
    assert set(listed) == {"web-1", "web-1/log", "9lives"}
    for name, (n, path, state, pid, since, want, paused) in listed.items():
        st = status.read(str(scan / name))
        assert st is not None
        assert (path, state, pid, want, paused) == (path_of(name), "up", st.pid, "up", False)
        assert since == pytest.approx(st.since, abs=1e-3)
    objects = call_json(session_bus, MANAGER, "org.freedesktop.DBus.ObjectManager",
                        "GetManagedObjects")
    assert isinstance(objects, list)
    managed = objects[0]
    assert set(managed) == {path_of(n) for n in listed}
    for name in listed:
        props = managed[path_of(name)][SIFACE]
        assert set(props) == PROPERTIES
        assert props["Name"]["data"] == name
        assert props["Pid"]["data"] == up_pid(scan / name)
    assert call_json(session_bus, MANAGER, MIFACE, "GetService", "s", "web-1/log") == [
        path_of("web-1/log")]


@pytest.mark.skipif(not have_ref("svc"), reason="needs daemontools' svc")
def test_properties_changed_after_svc_down(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    seen_dm = swept / "dbus-monitor.out"
    seen_gd = swept / "gdbus-monitor.out"
    monitor(procs, session_bus, seen_dm, DBUS_MONITOR, "--address", session_bus.address,
            "type='signal',interface='org.freedesktop.DBus.Properties'")
    monitor(procs, session_bus, seen_gd, "/usr/bin/stdbuf", "-oL", GDBUS, "monitor", "--address",
            session_bus.address, "--dest", NAME)
    until_heard(scan / "9lives", seen_dm, seen_gd)
    subprocess.run([ref("svc"), "-d", str(scan / "web-1")], check=True)

    def dm_saw_down() -> bool:
        text = seen_dm.read_text()
        at = text.find(f"path={path_of('web-1')};")
        tail = text[at:]
        return at >= 0 and '"State"' in tail and 'string "down"' in tail and '"Pid"' in tail \
            and "uint32 0" in tail
    wait_for(dm_saw_down, what="dbus-monitor sees State down")
    wait_for(lambda: f"{path_of('web-1')}: org.freedesktop.DBus.Properties.PropertiesChanged "
             f"('{SIFACE}', {{" in seen_gd.read_text()
             and "'State': <'down'>" in seen_gd.read_text()
             and "'Want': <'down'>" in seen_gd.read_text(), what="gdbus monitor sees down")


async def _changes(address: str, path: str,
                   steps: list[tuple[Callable[[], None], str]]) -> list[dict[str, object]]:
    """The PropertiesChanged of path heard while each step is taken in
    turn, each once the one before it was heard (the property it names
    changed)."""
    bus = await MessageBus(bus_address=address).connect()
    heard: list[dict[str, object]] = []
    got = asyncio.Event()

    def on(msg: Message) -> None:
        if msg.member == "PropertiesChanged" and msg.path == path and msg.body[0] == SIFACE:
            heard.append({k: v.value for k, v in msg.body[1].items()})
            got.set()
    bus.add_message_handler(on)
    try:
        # AddMatch answers once the rule is in place: no change is missed after it
        reply = await bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s",
            body=[f"type='signal',interface='org.freedesktop.DBus.Properties',path='{path}'"]))
        assert reply is not None and reply.message_type.name == "METHOD_RETURN"
        for step, key in steps:
            step()
            async with asyncio.timeout(10):
                while not any(key in h for h in heard):
                    got.clear()
                    await got.wait()
    finally:
        bus.disconnect()
    return heard


def _write(d: Path, facts: info.Info) -> Callable[[], None]:
    return lambda: info.write(facts, str(d / info.INFO), str(d / info.INFO_NEW))


@pytest.mark.skipif(not have_ref("supervise"), reason="needs daemontools' supervise")
def test_readiness_exit_and_backoff_properties(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    # daemontools' supervise writes no info file: only the test does
    d = make_service(scan / "web", "exec sleep 1000")
    procs.start([ref("supervise"), str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: up_pid(d), what="web up under daemontools' supervise")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned")
    path = path_of("web")
    wait_for(lambda: prop(session_bus, path, SIFACE, "Pid") == up_pid(d), what="web on the bus")
    # no info file: the defaults; ExitCode -2 is "no run has ended yet"
    assert {k: prop(session_bus, path, SIFACE, k) for k in (
        "Ready", "ReadySince", "StatusText", "ExitCode", "ExitSignal", "Fails", "Backoff",
        "Stopped")} == {"Ready": False, "ReadySince": 0.0, "StatusText": "", "ExitCode": -2,
                        "ExitSignal": 0, "Fails": 0, "Backoff": 0.0, "Stopped": False}
    t = 1795515964.25
    heard = asyncio.run(_changes(session_bus.address, path, [
        (_write(d, info.Info(ready=True, ready_since=t, status_text="3 clients, caf\u00e9")), "Ready"),
        (_write(d, info.Info(exit_code=-1, exit_signal=9, fails=3, backoff=8.0)), "Fails"),
        (_write(d, info.Info(exit_code=125, stopped=True)), "Stopped"),
    ]))
    merged: dict[str, object] = {}
    for h in heard:
        merged.update(h)
        if h.get("Ready"):
            # one signal carries every property that changed with it
            assert h == {"Ready": True, "ReadySince": t, "StatusText": "3 clients, caf\u00e9"}
    assert merged == {"Ready": False, "ReadySince": 0.0, "StatusText": "", "ExitCode": 125,
                      "ExitSignal": 0, "Fails": 0, "Backoff": 0.0, "Stopped": True}
    assert any(h.get("Backoff") == 8.0 and h.get("ExitCode") == -1 and h.get("ExitSignal") == 9
               and h.get("Fails") == 3 for h in heard), heard
    assert prop(session_bus, path, SIFACE, "ExitCode") == 125
    assert prop(session_bus, path, SIFACE, "Stopped") is True
    managed = call_json(session_bus, MANAGER, "org.freedesktop.DBus.ObjectManager",
                        "GetManagedObjects")
    assert isinstance(managed, list)
    assert managed[0][path][SIFACE]["ExitCode"] == {"type": "i", "data": 125}


def test_ready_from_systemd_notify_and_notification_fd(procs: Procs, swept: Path,
                                                       session_bus: Bus) -> None:
    """Services that say they are ready, each way, through the real worker:
    Ready, ReadySince and StatusText change together; a restart ends it."""
    scan = swept / "service"
    # each run waits for the test before it says it is ready
    for name, say in (("sd", '/usr/bin/systemd-notify --ready --status="serving 3"'),
                      ("fd", "echo >&3")):
        d = make_service(scan / name, f"read go < ../{name}.go\n{say}\nexec sleep 1000")
        os.mkfifo(scan / f"{name}.go")
    (scan / "fd" / "notification-fd").write_text("3\n")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned")
    for name in ("sd", "fd"):
        d = scan / name
        wait_for(lambda d=d: up_pid(d) and prop(session_bus, path_of(d.name), SIFACE, "Pid")
                 == up_pid(d), what=f"{name} up on the bus")
        assert prop(session_bus, path_of(name), SIFACE, "Ready") is False
        go = scan / f"{name}.go"
        t0 = time.time()
        heard = asyncio.run(_changes(session_bus.address, path_of(name), [
            (lambda go=go: release(go), "Ready")]))
        became = next(h for h in heard if "Ready" in h)
        assert became["Ready"] is True
        assert t0 <= float(became["ReadySince"]) <= time.time()  # type: ignore[arg-type]
        if name == "sd":
            assert became["StatusText"] == "serving 3"
        assert prop(session_bus, path_of(name), SIFACE, "Ready") is True
        # killed: not ready any more, and the last run's end is told
        heard = asyncio.run(_changes(session_bus.address, path_of(name), [
            (lambda d=d: status.send(str(d), b"k"), "ExitSignal")]))
        merged: dict[str, object] = {}
        for h in heard:
            merged.update(h)
        assert merged["Ready"] is False and merged["ReadySince"] == 0.0
        assert (merged["ExitCode"], merged["ExitSignal"]) == (-1, 9)


def test_control(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    web = scan / "web-1"
    assert busctl(session_bus, "call", NAME, MANAGER, MIFACE, "Down", "s", "web-1").returncode == 0
    wait_for(lambda: record(web)[0] == 0 and record(web)[2] == status.WANT_DOWN, what="down")
    assert busctl(session_bus, "call", NAME, path_of("web-1"), SIFACE, "Up").returncode == 0
    wait_for(lambda: up_pid(web), what="up again")
    assert busctl(session_bus, "call", NAME, path_of("web-1"), SIFACE, "Pause").returncode == 0
    wait_for(lambda: record(web)[1], what="paused")
    wait_for(lambda: prop(session_bus, path_of("web-1"), SIFACE, "Paused") is True,
             what="Paused on the bus")
    assert busctl(session_bus, "call", NAME, MANAGER, MIFACE, "Continue", "s",
                  "web-1").returncode == 0
    wait_for(lambda: not record(web)[1], what="continued")
    assert busctl(session_bus, "call", NAME, MANAGER, MIFACE, "Rescan").returncode == 0


def test_bad_input_changes_nothing(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    before = {d: record(scan / d) for d in ("web-1", "web-1/log", "9lives")}
    err = "org.dtd.Supervise1.Error."
    cases = [
        (MANAGER, f"{MIFACE}.Down", ["int32:5"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:web-1", "string:9lives"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["array:string:web-1"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["objpath:/web"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", [], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.GetService", ["uint32:7"], err + "InvalidArgs"),
        (path_of("web-1"), f"{SIFACE}.Down", ["string:x"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:../etc"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:web-1/../9lives"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:/etc"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:"], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Down", ["string:" + "x" * 4096], err + "NoSuchService"),
        (MANAGER, f"{MIFACE}.Down", ["string:" + "x" * 5000], err + "InvalidArgs"),
        (MANAGER, f"{MIFACE}.Kill", ["string:web"], err + "NoSuchService"),
        (MANAGER, f"{MIFACE}.GetService", ["string:nope"], err + "NoSuchService"),
        (MANAGER, f"{MIFACE}.Stop", ["string:web-1"], "org.freedesktop.DBus.Error.UnknownMethod"),
        (path_of("web-1"), f"{SIFACE}.Restart", [], "org.freedesktop.DBus.Error.UnknownMethod"),
        (path_of("web"), f"{SIFACE}.Down", [], "org.freedesktop.DBus.Error.Unknown"),
    ]
    for path, member, args, error in cases:
        r = dbus_send(session_bus, path, member, *args)
        assert r.returncode != 0, (member, args)
        assert r.stderr.startswith(f"Error {error}"), (member, args[:1], r.stderr[:300])
    # what gdbus makes of a wrong argument it cannot convert
    r = gdbus_call(session_bus, MANAGER, f"{MIFACE}.Down", "['web-1']")
    assert r.returncode != 0
    # properties cannot be set
    r = busctl(session_bus, "set-property", NAME, path_of("web-1"), SIFACE, "State", "s", "down")
    assert r.returncode != 0
    assert {d: record(scan / d) for d in before} == before
    assert prop(session_bus, path_of("web-1"), SIFACE, "State") == "up"


def test_supervise_not_running(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    # a control FIFO that no supervise reads, as after a worker died
    sup = scan / "9lives" / "supervise"
    os.rename(sup / "control", sup / "control.away")
    os.mkfifo(sup / "control", 0o600)
    r = gdbus_call(session_bus, MANAGER, f"{MIFACE}.Down", "'9lives'")
    assert "GDBus.Error:org.dtd.Supervise1.Error.SuperviseNotRunning" in r.stderr, r.stderr
    r = gdbus_call(session_bus, path_of("9lives"), f"{SIFACE}.Down")
    assert "GDBus.Error:org.dtd.Supervise1.Error.SuperviseNotRunning" in r.stderr, r.stderr
    assert up_pid(scan / "9lives")


@needs_root
def test_another_uid_reads_but_may_not_control_on_a_session_bus(
        procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    before = record(scan / "web-1")
    assert prop(session_bus, path_of("web-1"), SIFACE, "State", nobody=True) == "up"
    r = busctl(session_bus, "call", NAME, MANAGER, "org.freedesktop.DBus.ObjectManager",
               "GetManagedObjects", nobody=True)
    assert r.returncode == 0 and "web-1/log" in r.stdout, r.stderr
    for path, member, args in ((MANAGER, f"{MIFACE}.Down", ["'web-1'"]),
                               (path_of("web-1"), f"{SIFACE}.Kill", []),
                               (MANAGER, f"{MIFACE}.Rescan", [])):
        r = gdbus_call(session_bus, path, member, *args, nobody=True)
        assert "GDBus.Error:org.dtd.Supervise1.Error.NotAuthorized" in r.stderr, r.stderr
    assert record(scan / "web-1") == before


@needs_root
@needs_policy
def test_another_uid_is_refused_by_the_policy_on_a_system_bus(
        procs: Procs, swept: Path, system_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, system_bus)
    before = record(scan / "web-1")
    assert prop(system_bus, path_of("web-1"), SIFACE, "Pid", nobody=True) == before[0]
    r = busctl(system_bus, "call", NAME, MANAGER, MIFACE, "ListServices", nobody=True)
    assert r.returncode == 0 and '"web-1"' in r.stdout, r.stderr
    g = subprocess.run(as_nobody([GDBUS, "introspect", "--address", system_bus.address,
                                  "--dest", NAME, "--object-path", MANAGER]),
                       capture_output=True, text=True, timeout=30, check=False)
    assert g.returncode == 0 and "ListServices" in g.stdout, g.stderr
    for path, member, args in ((MANAGER, f"{MIFACE}.Down", ["'web-1'"]),
                               (path_of("web-1"), f"{SIFACE}.Down", []),
                               (MANAGER, f"{MIFACE}.Rescan", [])):
        r = gdbus_call(system_bus, path, member, *args, nobody=True)
        assert "GDBus.Error:org.freedesktop.DBus.Error.AccessDenied" in r.stderr, r.stderr
    assert record(scan / "web-1") == before
    # root may
    assert busctl(system_bus, "call", NAME, path_of("web-1"), SIFACE, "Down").returncode == 0
    wait_for(lambda: up_pid(scan / "web-1") == 0, what="down by root")


async def _call_without_interface(address: str, path: str, member: str) -> tuple[str, str]:
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await bus.call(Message(destination=NAME, path=path, member=member))
    finally:
        bus.disconnect()
    assert reply is not None
    return reply.message_type.name, reply.error_name or ""


def _as_nobody_in_a_child(address: str, path: str, member: str) -> tuple[str, str]:
    """A D-Bus call with no interface field, made by a forked child running
    as nobody (no client tool can leave the interface out, and other uids
    cannot reach this interpreter to start a new one)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = asyncio.run(_call_without_interface(address, path, member))
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, error = json.loads(data)
    return kind, error


@needs_root
@pytest.mark.parametrize("kind", ["session", "system"])
def test_a_call_without_interface_is_checked_too(
        procs: Procs, swept: Path, kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "system" and not Path(__file__).parent.parent.joinpath(
            "packaging", "org.dtd.Supervise1.conf").exists():
        pytest.skip("no policy file")
    bus: Bus = request.getfixturevalue(f"{kind}_bus")
    scan = swept / "service"
    ready(procs, scan, bus)
    before = record(scan / "web-1")
    # dbus-daemon's allow rules name an interface, which such a call lacks:
    # on the system bus the policy refuses it all, reads included; on a
    # session bus it reaches dtd, which dispatches by member as dbus-fast does
    if kind == "system":
        refused, read = ("ERROR", "org.freedesktop.DBus.Error.AccessDenied"), (
            "ERROR", "org.freedesktop.DBus.Error.AccessDenied")
    else:
        refused, read = ("ERROR", "org.dtd.Supervise1.Error.NotAuthorized"), ("METHOD_RETURN", "")
    assert _as_nobody_in_a_child(bus.address, path_of("web-1"), "Down") == refused
    assert _as_nobody_in_a_child(bus.address, MANAGER, "Down") == (
        "ERROR", "org.freedesktop.DBus.Error.AccessDenied" if kind == "system"
        else "org.dtd.Supervise1.Error.InvalidArgs")
    assert _as_nobody_in_a_child(bus.address, MANAGER, "Rescan") == refused
    assert _as_nobody_in_a_child(bus.address, MANAGER, "ListServices") == read
    assert record(scan / "web-1") == before


def test_added_and_removed_signals(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    ready(procs, scan, session_bus)
    seen = swept / "monitor.out"
    monitor(procs, session_bus, seen, DBUS_MONITOR, "--address", session_bus.address,
            f"type='signal',path='{MANAGER}'")
    listening = swept / "listening.out"
    monitor(procs, session_bus, listening, DBUS_MONITOR, "--address", session_bus.address,
            "type='signal',interface='org.freedesktop.DBus.Properties'")
    until_heard(scan / "9lives", listening)
    make_service(swept / "new-one", "exec sleep 1000")
    os.rename(swept / "new-one", scan / "new-one")
    wait_for(lambda: "member=ServiceAdded" in seen.read_text()
             and f'object path "{path_of("new-one")}"' in seen.read_text()
             and "member=InterfacesAdded" in seen.read_text(), what="ServiceAdded")
    wait_for(lambda: up_pid(scan / "new-one"), what="new-one up")
    os.rename(scan / "new-one", swept / "gone")
    subprocess.run([ours("svc"), "-dx", str(swept / "gone")], check=True)
    wait_for(lambda: "member=ServiceRemoved" in seen.read_text()
             and "member=InterfacesRemoved" in seen.read_text(), what="ServiceRemoved")
    r = gdbus_call(session_bus, MANAGER, f"{MIFACE}.GetService", "'new-one'")
    assert "org.dtd.Supervise1.Error.NoSuchService" in r.stderr


@pytest.mark.skipif(not have_ref("svc"), reason="needs daemontools' svc")
def test_events_after_the_root_was_killed_and_restarted(
        procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    root = ready(procs, scan, session_bus)
    worker = status.lock_owner(str(scan / "web-1"))
    os.kill(root.pid, signal.SIGKILL)
    root.wait()
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the new root owns the name")
    assert status.lock_owner(str(scan / "web-1")) == worker  # adopted, not restarted
    seen = swept / "monitor.out"
    monitor(procs, session_bus, seen, DBUS_MONITOR, "--address", session_bus.address,
            "type='signal',interface='org.freedesktop.DBus.Properties'")
    until_heard(scan / "9lives", seen)
    subprocess.run([ref("svc"), "-d", str(scan / "web-1")], check=True)
    wait_for(lambda: f"path={path_of('web-1')};" in seen.read_text()
             and 'string "down"' in seen.read_text(), what="State down after the restart")


@pytest.mark.parametrize("kind,env,why", [
    ("session", {}, "session bus: DBUS_SESSION_BUS_ADDRESS is not set"),
    ("system", {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus"},
     "system bus: file does not exist"),
])
def test_no_bus_is_one_warning(procs: Procs, swept: Path, kind: str, env: dict[str, str],
                               why: str) -> None:
    scan = swept / "service"
    make_service(scan / "alone", "exec sleep 1000")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DBUS_")}
    out = swept / "root.out"
    with open(out, "wb") as f:
        root = procs.start([ours("dtd"), "--scan", str(scan), "--socket", "none", "--bus", kind],
                           stdout=f, stderr=f, env={**clean, **env})
    wait_for(lambda: up_pid(scan / "alone"), what="supervising without a bus")
    wait_for(lambda: out.read_text(), what="the warning")
    assert out.read_text() == f"dtd: warning: no D-Bus ({why}); serving the socket only\n"
    # a normal case, not an error for the title to show
    assert b"D-Bus" not in Path(f"/proc/{root.pid}/cmdline").read_bytes()


def test_a_second_root_leaves_the_name_to_the_first(procs: Procs, swept: Path,
                                                    session_bus: Bus) -> None:
    scan = swept / "service"
    first = ready(procs, scan, session_bus)
    other = swept / "other"
    make_service(other / "solo", "exec sleep 1000")
    out = swept / "second.out"
    with open(out, "wb") as f:
        procs.start([ours("dtd"), "--scan", str(other), "--socket", "none", "--bus", "session"],
                    stdout=f, stderr=f, env=session_bus.env())
    wait_for(lambda: up_pid(other / "solo"), what="the second root supervising")
    wait_for(lambda: out.read_text(), what="its warning")
    assert out.read_text() == ("dtd: warning: unable to own org.dtd.Supervise1 on the session bus:"
                               " another process owns it; serving the socket only\n")
    assert serving(session_bus, first.pid)
    assert prop(session_bus, MANAGER, MIFACE, "ScanDirectory") == str(scan)


def test_a_lost_bus_is_one_warning_and_supervision_goes_on(procs: Procs, swept: Path,
                                                          session_bus: Bus) -> None:
    scan = swept / "service"
    root = ready(procs, scan, session_bus)
    session_bus.proc.kill()
    session_bus.proc.wait()
    out = swept / "root.out"
    wait_for(lambda: out.read_text(), what="the warning")
    assert out.read_text() == ("dtd: warning: lost the session bus (connection closed);"
                               " serving the socket only\n")
    subprocess.run([ours("svc"), "-d", str(scan / "web-1")], check=True)
    wait_for(lambda: up_pid(scan / "web-1") == 0, what="still supervising")
    assert root.poll() is None


def test_a_hundred_services_in_one_call_and_every_change_heard(
        procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    names = [f"s{i:03d}" for i in range(100)]
    for n in names:
        make_service(scan / n, "exec sleep 1000")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: all(up_pid(scan / n) for n in names), timeout=30, what="all up")
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned")

    def all_published() -> bool:
        managed = call_json(session_bus, MANAGER, "org.freedesktop.DBus.ObjectManager",
                            "GetManagedObjects")
        assert isinstance(managed, list)
        return all(managed[0].get(path_of(n), {}).get(SIFACE, {}).get("Pid", {}).get("data")
                   == up_pid(scan / n) for n in names)
    wait_for(all_published, timeout=30, what="every service with its pid in one call")
    seen = swept / "monitor.out"
    monitor(procs, session_bus, seen, DBUS_MONITOR, "--address", session_bus.address,
            "type='signal',interface='org.freedesktop.DBus.Properties'")
    until_heard(scan / names[0], seen)
    subprocess.run([ours("svc"), "-d", *(str(scan / n) for n in names)], check=True)

    def every_down_heard() -> bool:
        text = seen.read_text()
        heard = set()
        for block in text.split("\nsignal ")[1:]:
            if 'string "State"' in block and 'string "down"' in block:
                heard.add(block.split("path=", 1)[1].split(";", 1)[0])
        return heard >= {path_of(n) for n in names}
    wait_for(every_down_heard, timeout=30, what="a PropertiesChanged to down for each")
