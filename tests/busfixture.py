"""A private dbus-daemon for the bus tests: session-like (anyone may do
anything, as on a desktop session bus) or system-like (system.conf's default
policy plus dtd's own policy file from packaging/), listening on a socket in
a directory that other uids can reach, so that tests can call as nobody."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DBUS_DAEMON = "/usr/bin/dbus-daemon"
POLICY = Path(__file__).resolve().parent.parent / "packaging" / "org.dtd.Supervise1.conf"
NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"

HEAD = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{kind}</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
"""

SESSION = """  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# system.conf's default context, without the parts that need a real system
SYSTEM = """  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


class Bus:
    def __init__(self, kind: str, address: str, proc: "subprocess.Popen[bytes]", tmp: str) -> None:
        self.kind = kind
        self.address = address
        self.proc = proc
        self.tmp = tmp

    def env(self) -> dict[str, str]:
        """An environment whose session or system bus is this one."""
        env = dict(os.environ)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        key = "DBUS_SYSTEM_BUS_ADDRESS" if self.kind == "system" else "DBUS_SESSION_BUS_ADDRESS"
        env[key] = self.address
        return env

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_bus(kind: str) -> Bus:
    tmp = tempfile.mkdtemp(prefix="dtd-bus-")
    os.chmod(tmp, 0o755)  # nobody connects too
    socket = os.path.join(tmp, "bus")
    text = HEAD.format(kind=kind, socket=socket)
    text += SESSION if kind == "session" else SYSTEM.format(policy=POLICY)
    conf = os.path.join(tmp, "bus.conf")
    Path(conf).write_text(text)
    # its complaints (no fd limit to raise in a container) go to a file
    with open(os.path.join(tmp, "bus.log"), "wb") as log:
        proc = subprocess.Popen(
            [DBUS_DAEMON, f"--config-file={conf}", "--nofork", "--print-address"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"dbus-daemon did not start with {conf}")
    return Bus(kind, line, proc, tmp)


def as_nobody(argv: list[str]) -> list[str]:
    return [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


needs_dbus = pytest.mark.skipif(not os.path.exists(DBUS_DAEMON), reason="no dbus-daemon")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SETPRIV),
                                reason="calling as another uid needs root and setpriv")
needs_policy = pytest.mark.skipif(not POLICY.exists(), reason="no packaging/org.dtd.Supervise1.conf")


@pytest.fixture
def session_bus() -> Iterator[Bus]:
    bus = start_bus("session")
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture
def system_bus() -> Iterator[Bus]:
    bus = start_bus("system")
    try:
        yield bus
    finally:
        bus.stop()
