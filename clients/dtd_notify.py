"""dtd-notify: a desktop notification when a service goes down unasked.

    dtd-notify [--system | --session] [-v]

It follows dtd's objects on the bus (``org.dtd.Supervise1``: each
service's ``PropertiesChanged``, the manager's ``ServiceAdded`` and
``ServiceRemoved``, and the name's owner, so that a daemon that restarts
is picked up again) and calls ``org.freedesktop.Notifications.Notify``,
urgency critical, when a service wanted up stops being up: its state
leaves ``up`` while ``Want`` is still ``up``, or its pid changes from one
process to another, a restart quicker than the daemon could show the
service down. ``svc -d`` (or ``dtdctl down``, or ``Down()`` on the bus)
sets ``Want`` to ``down`` first, so it is not notified; a restart asked
with ``svc -t`` or ``svc -k`` leaves ``Want`` up and is (nothing on disk
says who sent the signal). One service's notification replaces its
previous one, so a service that keeps failing shows one bubble.

Unlike the other clients this one uses the bus library (dbus-fast, with
asyncio): it runs for a whole desktop session, so its start-up time does
not matter, and it needs a bus connection that receives signals.

Exit codes: 0 on SIGTERM or SIGINT; 100 usage; 111 no bus, or the bus
connection lost.
"""

import argparse
import asyncio
import signal
import sys
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

import dtd
from dtd.bus import (
    MANAGER_IFACE,
    MANAGER_PATH,
    NAME,
    OBJECT_MANAGER,
    SERVICE_IFACE,
    SERVICE_PREFIX,
)
from dtd.diag import EXIT_TEMP, EXIT_USAGE

PROG = "dtd-notify"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
URGENCY_CRITICAL = 2
# Want and ExitCode may come in a second PropertiesChanged just after State
# (the daemon reads status and info on separate events): what to notify is
# decided this long after the first change
SETTLE = 0.1
MATCHES = [
    (f"type='signal',sender='{NAME}',interface='{PROPERTIES}',member='PropertiesChanged',"
     f"path_namespace='{MANAGER_PATH}'"),
    f"type='signal',sender='{NAME}',interface='{MANAGER_IFACE}',path='{MANAGER_PATH}'",
    f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',arg0='{NAME}'",
]

Props = dict[str, Any]


def _plain(props: "dict[str, Variant]") -> Props:
    return {k: v.value for k, v in props.items()}


def how_it_ended(props: Props) -> str:
    code = props.get("ExitCode", -2)
    if code == -1:
        sig = int(props.get("ExitSignal", 0))
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    if isinstance(code, int) and code >= 0:
        return f"exited with code {code}"
    return "stopped"


class Notifier:
    """bus: where dtd is followed; desktop: where notifications go (the
    session bus, also when dtd is on the system bus)."""

    def __init__(self, bus: MessageBus, desktop: MessageBus, verbose: bool) -> None:
        self.bus = bus
        self.desktop = desktop
        self.verbose = verbose
        self.services: dict[str, Props] = {}  # object path -> its properties
        self.pending: dict[str, tuple[Props, asyncio.TimerHandle]] = {}
        self.shown: dict[str, int] = {}  # service name -> notification id to replace
        self.warned = False
        self.tasks: set[asyncio.Task[None]] = set()

    def say(self, line: str) -> None:
        if self.verbose:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    async def call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
                   body: list[Any] | None = None, bus: MessageBus | None = None) -> Message | None:
        reply = await (bus or self.bus).call(Message(
            destination=dest, path=path, interface=iface, member=member, signature=signature,
            body=body or []))
        if reply is None or reply.message_type is not MessageType.METHOD_RETURN:
            return None
        return reply

    async def start(self) -> None:
        for rule in MATCHES:
            await self.call(DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule])
        await self.load()

    async def load(self) -> None:
        """Every service's properties, from scratch (at start, and when the
        daemon has come back)."""
        reply = await self.call(NAME, MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
        self.services = {}
        if reply is not None:
            for path, ifaces in reply.body[0].items():
                if SERVICE_IFACE in ifaces:
                    self.services[path] = _plain(ifaces[SERVICE_IFACE])
            self.say(f"{PROG}: watching {len(self.services)} services")
        else:
            self.say(f"{PROG}: waiting for {NAME}")

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == NAME:
            self.services = {}
            if msg.body[2]:
                self.spawn(self.load())
        elif msg.member == "PropertiesChanged" and msg.body and msg.body[0] == SERVICE_IFACE:
            self.changed(msg.path or "", _plain(msg.body[1]))
        elif msg.interface == MANAGER_IFACE and msg.member == "ServiceAdded":
            self.spawn(self.added(str(msg.body[1])))
        elif msg.interface == MANAGER_IFACE and msg.member == "ServiceRemoved":
            self.services.pop(str(msg.body[1]), None)

    async def added(self, path: str) -> None:
        reply = await self.call(NAME, path, PROPERTIES, "GetAll", "s", [SERVICE_IFACE])
        if reply is not None:
            self.services[path] = _plain(reply.body[0])
            self.say(f"{PROG}: watching {len(self.services)} services")

    def changed(self, path: str, changes: Props) -> None:
        old = self.services.get(path)
        if old is None:
            # not loaded yet: its GetAll may have been answered before this
            # change was sent and be read after it; asked again, the state
            # the next change starts from is the latest
            if path.startswith(SERVICE_PREFIX):
                self.spawn(self.added(path))
            return
        new = {**old, **changes}
        self.services[path] = new
        if path in self.pending:
            return  # a change already being settled: it reads the latest
        went_down = old.get("State") == "up" and new.get("State") != "up"
        restarted = (old.get("State") == "up" and new.get("State") == "up"
                     and old.get("Pid") and new.get("Pid") and old["Pid"] != new["Pid"])
        if (went_down or restarted) and old.get("Want") == "up":
            handle = asyncio.get_running_loop().call_later(SETTLE, self.settle, path)
            self.pending[path] = (old, handle)

    def settle(self, path: str) -> None:
        old, _ = self.pending.pop(path)
        now = self.services.get(path)
        if now is None or now.get("Want") != "up":
            return  # asked to go down after all, or gone
        self.spawn(self.notify(old, now))

    async def notify(self, old: Props, now: Props) -> None:
        name = str(now.get("Name", "?"))
        ended = how_it_ended(now)
        if now.get("State") == "up":
            summary = f"{name} restarted"
            body = f"{name} (pid {old.get('Pid')}) {ended}; supervise started it again " \
                   f"(pid {now.get('Pid')})."
        else:
            summary = f"{name} went down"
            body = f"{name} (pid {old.get('Pid')}) {ended}, though wanted up."
            if now.get("Backoff"):
                body += f" Next start in {now['Backoff']:g} s."
        hints = {"urgency": Variant("y", URGENCY_CRITICAL)}
        reply = await self.call(
            NOTIFICATIONS, NOTIFICATIONS_PATH, NOTIFICATIONS, "Notify", "susssasa{sv}i",
            ["dtd", self.shown.get(name, 0), "dialog-warning", summary, body, [], hints, -1],
            self.desktop)
        if reply is None:
            if not self.warned:
                sys.stderr.write(f"{PROG}: warning: unable to notify: no {NOTIFICATIONS}\n")
                self.warned = True
            return
        self.warned = False
        self.shown[name] = int(reply.body[0])
        self.say(f"{PROG}: {summary}: {body}")


async def connect(kind: str) -> MessageBus | None:
    try:
        return await MessageBus(bus_type=BusType.SYSTEM if kind == "system"
                                else BusType.SESSION).connect()
    except Exception as e:  # noqa: BLE001  (no address, no socket, refused, auth: all mean no bus)
        sys.stderr.write(f"{PROG}: fatal: unable to connect to the {kind} bus: {e}\n")
        return None


async def serve(kind: str, verbose: bool) -> int:
    bus = await connect(kind)
    if bus is None:
        return EXIT_TEMP
    desktop = bus if kind == "session" else await connect("session")
    if desktop is None:
        bus.disconnect()
        return EXIT_TEMP
    notifier = Notifier(bus, desktop, verbose)
    bus.add_message_handler(notifier.on_message)
    await notifier.start()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    buses = {kind: bus, "session": desktop}
    lost = {asyncio.ensure_future(b.wait_for_disconnect()): k  # type: ignore[no-untyped-call]
            for k, b in buses.items()}
    done, _ = await asyncio.wait([stop, *lost], return_when=asyncio.FIRST_COMPLETED)
    for watch in lost:
        watch.cancel()
    for b in buses.values():
        b.disconnect()
    if stop.done():
        return 0
    which = next(lost[w] for w in done if w in lost)
    sys.stderr.write(f"{PROG}: fatal: lost the {which} bus\n")
    return EXIT_TEMP


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "Any":
        # argparse exits 2 for a bad command line: daemontools' 100 here
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.exit(EXIT_USAGE)


def parser() -> Parser:
    p = Parser(prog=PROG,
               description="Notify the desktop when a service dtd supervises goes down unasked.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--system", dest="bus", action="store_const", const="system",
                       help="follow the dtd of the system bus")
    which.add_argument("--session", dest="bus", action="store_const", const="session",
                       help="follow the dtd of the session bus (the default)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say on stdout what is watched and each notification")
    p.add_argument("--version", action="version", version=f"{PROG} {dtd.__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return asyncio.run(serve(args.bus or "session", args.verbose))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
