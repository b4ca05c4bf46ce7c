"""The D-Bus service: the root's model and controls as ``org.dtd.Supervise1``.

A thin adapter: every object here reads ``root.model`` or calls
``root.send``, which writes into ``supervise/control`` as svc does.

- ``/org/dtd/Supervise1``, interface ``org.dtd.Supervise1.Manager``:
  ``ListServices() -> a(sosudsb)`` (name, object path, state, pid, since,
  want, paused), ``GetService(s) -> o``, the control verbs by name
  (``Up(s)`` ... ``Exit(s)``), ``Rescan()``; signals ``ServiceAdded(so)``,
  ``ServiceRemoved(so)``; properties ``ScanDirectory``, ``Version``. The
  same object is the ``org.freedesktop.DBus.ObjectManager`` of the services.
- ``/org/dtd/Supervise1/service/<name escaped as systemd does>``, interface
  ``org.dtd.Supervise1.Service``: properties ``Name Directory State Pid
  Since Paused Want NormallyUp Starts Ready ReadySince StatusText ExitCode
  ExitSignal Fails Backoff Stopped`` (changes go out in
  ``PropertiesChanged``), methods ``Up Down Once Pause Continue Hangup
  Alarm Interrupt Terminate Kill Exit``.

Errors (``org.dtd.Supervise1.Error.*``): NoSuchService, NotAuthorized,
SuperviseNotRunning, InvalidArgs; ``org.freedesktop.DBus.Error.Failed``
for any other failure to write the control byte.

Only root and the daemon's own uid may control; the policy file does it on
the system bus, and the caller's uid is checked here as well, so that a
session bus, or a policy with a hole, is safe too.
"""

import os

# typing is not imported for this (2 ms before the services start); mypy
# treats any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dtd.bus_service import Publisher
    from dtd.root import Root

NAME = "org.dtd.Supervise1"
MANAGER_PATH = "/org/dtd/Supervise1"
SERVICE_PREFIX = MANAGER_PATH + "/service/"
MANAGER_IFACE = NAME + ".Manager"
SERVICE_IFACE = NAME + ".Service"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"

NO_SUCH_SERVICE = NAME + ".Error.NoSuchService"
NOT_AUTHORIZED = NAME + ".Error.NotAuthorized"
SUPERVISE_NOT_RUNNING = NAME + ".Error.SuperviseNotRunning"
INVALID_ARGS = NAME + ".Error.InvalidArgs"


def escape(name: str) -> str:
    """One object-path element for name, as systemd's sd_bus_path_encode:
    every byte outside [A-Za-z0-9], and a leading digit, becomes _xx."""
    if not name:
        return "_"
    out = []
    for i, byte in enumerate(name.encode("utf-8", "surrogateescape")):
        c = chr(byte)
        if c.isascii() and c.isalnum() and not (i == 0 and c.isdigit()):
            out.append(c)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)


def service_path(name: str) -> str:
    return SERVICE_PREFIX + escape(name)


class BusService:
    """The adapter: ``--bus system|session``. allowed: the uids that may
    control (default root and the daemon's own).

    dbus-fast (and asyncio with it) is imported in start(), once the first
    services run: the daemon's start does not wait for it."""

    def __init__(self, bus: str = "session", allowed: "frozenset[int] | None" = None) -> None:
        self.kind = bus
        self.allowed = allowed if allowed is not None else frozenset({0, os.getuid()})
        self.publisher: "Publisher | None" = None

    async def start(self, root: "Root") -> None:
        from dtd.bus_service import Publisher

        self.publisher = Publisher(self.kind, self.allowed)
        await self.publisher.start(root)

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
