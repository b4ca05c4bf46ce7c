# ruff: noqa: F811 (the fixtures imported from busfixture are arguments here)
"""dtd-notify against a real dtd on a private session bus, with a
notification server written here (dbus-fast, owning
org.freedesktop.Notifications on that bus, recording every Notify): a
service killed unasked is one notification naming it; svc -d is none; a
daemon that comes back is followed again; no bus is exit 111."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from busfixture import Bus, needs_dbus, needs_policy, session_bus, system_bus  # noqa: F401
from conftest import Procs, make_service, ours, pid_alive, wait_for
from test_bus import serving, start_root, up_pid

pytestmark = needs_dbus

SERVER = r'''
import asyncio, json, sys
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

class Notifications(ServiceInterface):
    def __init__(self, out):
        super().__init__("org.freedesktop.Notifications")
        self.out = out
        self.last = 0

    @method()
    def Notify(self, app_name: "s", replaces_id: "u", app_icon: "s", summary: "s", body: "s",
               actions: "as", hints: "a{sv}", expire_timeout: "i") -> "u":
        self.last += 1
        call = {"app_name": app_name, "replaces_id": replaces_id, "app_icon": app_icon,
                "summary": summary, "body": body, "actions": actions,
                "hints": {k: v.value for k, v in hints.items()}, "expire_timeout": expire_timeout}
        with open(self.out, "a") as f:
            f.write(json.dumps(call) + "\n")
        return replaces_id or self.last

    @method()
    def GetCapabilities(self) -> "as":
        return ["body"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["test", "dtd tests", "1", "1.2"]

async def main():
    bus = await MessageBus().connect()
    bus.export("/org/freedesktop/Notifications", Notifications(sys.argv[1]))
    await bus.request_name("org.freedesktop.Notifications")
    print("ready", flush=True)
    await bus.wait_for_disconnect()

asyncio.run(main())
'''


def calls(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def notifications_server(procs: Procs, bus: Bus, out: Path) -> None:
    p = procs.start([sys.executable, "-c", SERVER, str(out)], env=bus.env(),
                    stdout=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"


def notifier(procs: Procs, bus: Bus, out: Path, *args: str,
             env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(out, "wb") as f:
        return procs.start([ours("dtd-notify"), "-v", *args], env=env or bus.env(), stdout=f,
                           stderr=subprocess.STDOUT)


def test_a_kill_is_notified_svc_d_is_not(procs: Procs, swept: Path, session_bus: Bus) -> None:
    scan = swept / "service"
    for name in ("victim", "calm", "sentinel"):
        make_service(scan / name, "exec sleep 1000")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned")
    for name in ("victim", "calm", "sentinel"):
        wait_for(lambda name=name: up_pid(scan / name), what=f"{name} up")
    seen = swept / "notifications.jsonl"
    notifications_server(procs, session_bus, seen)
    said = swept / "notify.out"
    notifier(procs, session_bus, said)
    wait_for(lambda: "watching 3 services" in said.read_text(), what="dtd-notify watching")

    victim = up_pid(scan / "victim")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: calls(seen), what="a notification")
    wait_for(lambda: up_pid(scan / "victim") not in (0, victim), what="victim restarted")
    (call,) = calls(seen)
    assert call["app_name"] == "dtd"
    assert call["hints"]["urgency"] == 2  # critical
    assert call["summary"] in ("victim went down", "victim restarted")
    assert call["body"].startswith(f"victim (pid {victim}) killed by SIGKILL")
    assert call["replaces_id"] == 0 and call["actions"] == [] and call["expire_timeout"] == -1

    # asked to go down: nothing. Then the sentinel killed: its notification
    # comes after any that svc -d would have caused, so when it is there,
    # the absence of one for calm means something
    subprocess.run([ours("svc"), "-d", str(scan / "calm")], check=True)
    wait_for(lambda: up_pid(scan / "calm") == 0, what="calm down")
    os.kill(up_pid(scan / "sentinel"), signal.SIGKILL)
    wait_for(lambda: len(calls(seen)) >= 2, what="the sentinel's notification")
    assert [c["summary"].split()[0] for c in calls(seen)] == ["victim", "sentinel"]

    # the same service again: its bubble is replaced, not stacked
    victim2 = up_pid(scan / "victim")
    os.kill(victim2, signal.SIGKILL)
    wait_for(lambda: len(calls(seen)) >= 3, what="the second notification")
    assert calls(seen)[2]["summary"].startswith("victim ")
    assert calls(seen)[2]["replaces_id"] == 1


def test_a_daemon_that_comes_back_is_followed(procs: Procs, swept: Path,
                                              session_bus: Bus) -> None:
    scan = swept / "service"
    make_service(scan / "a", "exec sleep 1000")
    seen = swept / "notifications.jsonl"
    notifications_server(procs, session_bus, seen)
    said = swept / "notify.out"
    notifier(procs, session_bus, said)
    # no daemon yet: waiting for the name
    wait_for(lambda: "waiting for org.dtd.Supervise1" in said.read_text(), what="waiting")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned")
    wait_for(lambda: "watching 1 services" in said.read_text(), what="watching")
    pid = wait_for(lambda: up_pid(scan / "a"), what="a up")
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: calls(seen), what="a notification")
    assert calls(seen)[0]["summary"].startswith("a ")

    # a service added while it watches (ServiceAdded)
    make_service(scan / "b", "exec sleep 1000")
    # in the notifier's view first (its GetAll of b answered): a change
    # before that would not be seen
    wait_for(lambda: "watching 2 services" in said.read_text(), what="b watched")

    def b_running() -> int:
        # the pid the status file names, alive, and the one on the bus
        pid = up_pid(scan / "b")
        shown = subprocess.run(
            ["/usr/bin/busctl", f"--address={session_bus.address}", "get-property",
             "org.dtd.Supervise1", "/org/dtd/Supervise1/service/b", "org.dtd.Supervise1.Service",
             "Pid"], capture_output=True, text=True, check=False).stdout
        return pid if pid and pid_alive(pid) and shown == f"u {pid}\n" else 0
    pid = wait_for(b_running, what="b up, on the bus")
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(calls(seen)) >= 2, what="b's notification")
    assert calls(seen)[1]["summary"].startswith("b ")

    # the daemon killed and started again: the new one is followed
    watched = said.read_text().count("watching 2 services")
    root.kill()
    root.wait(timeout=10)
    wait_for(lambda: not serving(session_bus, root.pid), what="the name gone")
    root = start_root(procs, scan, session_bus)
    wait_for(lambda: serving(session_bus, root.pid), what="the name owned again")
    # said again, of the new daemon (the old one's line is there already:
    # waiting on it, a kill before the new one was loaded went unseen in CI)
    wait_for(lambda: said.read_text().count("watching 2 services") > watched,
             what="watching again")
    pid = wait_for(lambda: up_pid(scan / "a"), what="a up")
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(calls(seen)) >= 3, what="a's second notification")
    assert calls(seen)[2]["summary"].startswith("a ")
    assert len(calls(seen)) == 3


@needs_policy
def test_system_bus_followed_notified_on_the_session_bus(procs: Procs, swept: Path,
                                                        session_bus: Bus, system_bus: Bus) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may own org.dtd.Supervise1 on the system bus")
    scan = swept / "service"
    make_service(scan / "sys", "exec sleep 1000")
    root = start_root(procs, scan, system_bus)
    wait_for(lambda: serving(system_bus, root.pid), what="the name owned")
    seen = swept / "notifications.jsonl"
    notifications_server(procs, session_bus, seen)
    said = swept / "notify.out"
    env = {**session_bus.env(), "DBUS_SYSTEM_BUS_ADDRESS": system_bus.address}
    p = notifier(procs, session_bus, said, "--system", env=env)
    wait_for(lambda: "watching 1 services" in said.read_text(), what="watching")
    pid = wait_for(lambda: up_pid(scan / "sys"), what="sys up")
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: calls(seen), what="a notification")
    assert calls(seen)[0]["summary"].startswith("sys ")
    # SIGTERM ends it with 0
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


def test_a_lost_bus_is_exit_111(procs: Procs, swept: Path, session_bus: Bus) -> None:
    said = swept / "notify.out"
    p = notifier(procs, session_bus, said)
    wait_for(lambda: "waiting for" in said.read_text(), what="dtd-notify connected")
    session_bus.proc.kill()
    assert p.wait(timeout=10) == 111
    assert said.read_text().endswith("dtd-notify: fatal: lost the session bus\n")


def test_no_bus_is_exit_111(swept: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={swept}/nobus"
    p = subprocess.run([ours("dtd-notify")], env=env, capture_output=True, text=True, timeout=30,
                       check=False)
    assert p.returncode == 111
    assert p.stderr.startswith("dtd-notify: fatal: unable to connect to the session bus: ")
    p = subprocess.run([ours("dtd-notify"), "--system", "--session"], capture_output=True,
                       text=True, timeout=30, check=False)
    assert p.returncode == 100 and "not allowed with argument" in p.stderr
