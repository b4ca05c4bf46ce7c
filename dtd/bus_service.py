"""The D-Bus side of dtd.bus, with dbus-fast: the manager and service
objects, the connection and the name, the model followed, control calls
checked and handed to ``root.send``. See dtd.bus for the interface."""

# dbus-fast reads D-Bus signatures from string annotations ("s", "o"), which
# mypy would take for undefined type names.
# mypy: disable-error-code="name-defined, valid-type"
# ruff: noqa: F821

import asyncio
import errno
import os
from typing import TYPE_CHECKING, Any

from dbus_fast import DBusError, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import ErrorType, NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

import dtd
from dtd import diag
from dtd.bus import (INVALID_ARGS, MANAGER_IFACE, MANAGER_PATH, NAME, NO_SUCH_SERVICE,
                     NOT_AUTHORIZED, OBJECT_MANAGER, SERVICE_IFACE, SUPERVISE_NOT_RUNNING,
                     service_path)
from dtd.model import REMOVED, VERBS, Service

if TYPE_CHECKING:
    from dtd.root import Root

NAME_MAX = 4096  # longer is no path on Linux, so no service
SHOWN = 64  # characters of a bad name quoted back in an error
UID_CACHE = 1024

# D-Bus method names of the verbs, as systemd and svc's man page name them
METHOD_VERBS = {
    "Up": "up", "Down": "down", "Once": "once", "Pause": "pause", "Continue": "cont",
    "Hangup": "hup", "Alarm": "alarm", "Interrupt": "int", "Terminate": "term",
    "Kill": "kill", "Exit": "exit",
}
CONTROL = frozenset(METHOD_VERBS) | {"Rescan"}

PROPERTY_SIGNATURES = {
    "Name": "s", "Directory": "s", "State": "s", "Pid": "u", "Since": "d",
    "Paused": "b", "Want": "s", "NormallyUp": "b", "Starts": "t",
    "Ready": "b", "ReadySince": "d", "StatusText": "s", "ExitCode": "i", "ExitSignal": "u",
    "Fails": "u", "Backoff": "d", "Stopped": "b",
}
# ExitCode before any run of ./run has ended (JSON null): D-Bus has no null,
# and -1 already means "killed by a signal", as ./finish's first argument
NO_EXIT = -2

def _text(s: str) -> str:
    """A file name as a D-Bus string, which must be UTF-8: bytes that are
    not become U+FFFD (the object path, escaped from the bytes, stays exact)."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _shown(name: str) -> str:
    return repr(name if len(name) <= SHOWN else name[:SHOWN] + "...")


def properties(svc: Service) -> dict[str, Any]:
    return {
        "Name": _text(svc.name), "Directory": _text(svc.directory), "State": svc.state,
        "Pid": svc.pid, "Since": svc.since, "Paused": svc.paused, "Want": svc.want,
        "NormallyUp": svc.normally_up, "Starts": svc.starts,
        "Ready": svc.ready, "ReadySince": svc.ready_since, "StatusText": _text(svc.status_text),
        "ExitCode": NO_EXIT if svc.exit_code is None else svc.exit_code,
        "ExitSignal": svc.exit_signal, "Fails": svc.fails, "Backoff": svc.backoff,
        "Stopped": svc.stopped,
    }


def _variants(svc: Service) -> dict[str, Variant]:
    return {k: Variant(PROPERTY_SIGNATURES[k], v) for k, v in properties(svc).items()}


class ServiceObject(ServiceInterface):
    def __init__(self, owner: "Publisher", svc: Service) -> None:
        super().__init__(SERVICE_IFACE)
        self.owner = owner
        self.svc = svc
        self.path = service_path(svc.name)

    def update(self, svc: Service) -> None:
        old, new = properties(self.svc), properties(svc)
        self.svc = svc
        changed = {k: v for k, v in new.items() if old[k] != v}
        if changed:
            self.emit_properties_changed(changed)

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return _text(self.svc.name)

    @dbus_property(access=PropertyAccess.READ)
    def Directory(self) -> "s":
        return _text(self.svc.directory)

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "s":
        return self.svc.state

    @dbus_property(access=PropertyAccess.READ)
    def Pid(self) -> "u":
        return self.svc.pid

    @dbus_property(access=PropertyAccess.READ)
    def Since(self) -> "d":
        return self.svc.since

    @dbus_property(access=PropertyAccess.READ)
    def Paused(self) -> "b":
        return self.svc.paused

    @dbus_property(access=PropertyAccess.READ)
    def Want(self) -> "s":
        return self.svc.want

    @dbus_property(access=PropertyAccess.READ)
    def NormallyUp(self) -> "b":
        return self.svc.normally_up

    @dbus_property(access=PropertyAccess.READ)
    def Starts(self) -> "t":
        return self.svc.starts

    @dbus_property(access=PropertyAccess.READ)
    def Ready(self) -> "b":
        return self.svc.ready

    @dbus_property(access=PropertyAccess.READ)
    def ReadySince(self) -> "d":
        return self.svc.ready_since

    @dbus_property(access=PropertyAccess.READ)
    def StatusText(self) -> "s":
        return _text(self.svc.status_text)

    @dbus_property(access=PropertyAccess.READ)
    def ExitCode(self) -> "i":
        return NO_EXIT if self.svc.exit_code is None else self.svc.exit_code

    @dbus_property(access=PropertyAccess.READ)
    def ExitSignal(self) -> "u":
        return self.svc.exit_signal

    @dbus_property(access=PropertyAccess.READ)
    def Fails(self) -> "u":
        return self.svc.fails

    @dbus_property(access=PropertyAccess.READ)
    def Backoff(self) -> "d":
        return self.svc.backoff

    @dbus_property(access=PropertyAccess.READ)
    def Stopped(self) -> "b":
        return self.svc.stopped

    def _do(self, method_name: str) -> None:
        self.owner.control(self.svc.name, METHOD_VERBS[method_name])

    @method()
    def Up(self) -> None:
        self._do("Up")

    @method()
    def Down(self) -> None:
        self._do("Down")

    @method()
    def Once(self) -> None:
        self._do("Once")

    @method()
    def Pause(self) -> None:
        self._do("Pause")

    @method()
    def Continue(self) -> None:
        self._do("Continue")

    @method()
    def Hangup(self) -> None:
        self._do("Hangup")

    @method()
    def Alarm(self) -> None:
        self._do("Alarm")

    @method()
    def Interrupt(self) -> None:
        self._do("Interrupt")

    @method()
    def Terminate(self) -> None:
        self._do("Terminate")

    @method()
    def Kill(self) -> None:
        self._do("Kill")

    @method()
    def Exit(self) -> None:
        self._do("Exit")


class Manager(ServiceInterface):
    def __init__(self, owner: "Publisher") -> None:
        super().__init__(MANAGER_IFACE)
        self.owner = owner

    @dbus_property(access=PropertyAccess.READ)
    def ScanDirectory(self) -> "s":
        return _text(self.owner.root().scandir)

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> "s":
        return dtd.__version__

    @method()
    def ListServices(self) -> "a(sosudsb)":
        return [[_text(s.name), service_path(s.name), s.state, s.pid, s.since, s.want, s.paused]
                for s in self.owner.root().model.all()]

    @method()
    def GetService(self, name: "s") -> "o":
        self.owner.known(name)
        return service_path(name)

    @method()
    def Rescan(self) -> None:
        self.owner.root().rescan_soon()

    @signal()
    def ServiceAdded(self, name: str, path: str) -> "so":
        return [name, path]

    @signal()
    def ServiceRemoved(self, name: str, path: str) -> "so":
        return [name, path]

    @method()
    def Up(self, name: "s") -> None:
        self.owner.control(name, "up")

    @method()
    def Down(self, name: "s") -> None:
        self.owner.control(name, "down")

    @method()
    def Once(self, name: "s") -> None:
        self.owner.control(name, "once")

    @method()
    def Pause(self, name: "s") -> None:
        self.owner.control(name, "pause")

    @method()
    def Continue(self, name: "s") -> None:
        self.owner.control(name, "cont")

    @method()
    def Hangup(self, name: "s") -> None:
        self.owner.control(name, "hup")

    @method()
    def Alarm(self, name: "s") -> None:
        self.owner.control(name, "alarm")

    @method()
    def Interrupt(self, name: "s") -> None:
        self.owner.control(name, "int")

    @method()
    def Terminate(self, name: "s") -> None:
        self.owner.control(name, "term")

    @method()
    def Kill(self, name: "s") -> None:
        self.owner.control(name, "kill")

    @method()
    def Exit(self, name: "s") -> None:
        self.owner.control(name, "exit")


def _in_signatures(iface: ServiceInterface) -> dict[str, str]:
    return {m.name: "".join(str(a.signature) for a in m.in_args)
            for m in iface.introspect().methods}


class Publisher:
    """The service on one bus, for as long as the connection lasts."""

    def __init__(self, bus: str, allowed: "frozenset[int]") -> None:
        self.kind = bus
        self.allowed = allowed
        self._root: "Root | None" = None
        self.bus: MessageBus | None = None
        self.manager = Manager(self)
        self.objects: dict[str, ServiceObject] = {}
        self.uids: dict[str, int] = {}
        self.tasks: set["asyncio.Future[None]"] = set()
        self.stopping = False
        self.manager_signatures = _in_signatures(self.manager)
        self.service_signatures = _in_signatures(ServiceObject(self, Service("", "")))

    def root(self) -> "Root":
        assert self._root is not None  # objects are exported by start()
        return self._root

    # -- the adapter ------------------------------------------------------------

    def _address(self) -> str:
        if self.kind == "system":
            return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS",
                                  "unix:path=/run/dbus/system_bus_socket")
        address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        if not address:
            raise LookupError("DBUS_SESSION_BUS_ADDRESS is not set")
        return address

    async def start(self, root: "Root") -> None:
        self._root = root
        try:
            address = self._address()
            bus = await MessageBus(bus_address=address).connect()
        except Exception as e:
            # no bus at all is normal in a container: said once on stderr,
            # kept out of the title, which shows what went wrong
            why = diag.reason(e) if isinstance(e, OSError) and e.errno else str(e)
            diag.warn(root.prog, "no D-Bus (", self.kind, " bus: ", why,
                      "); serving the socket only")
            return
        self.bus = bus
        bus.add_message_handler(self._filter)
        bus.export(MANAGER_PATH, self.manager)
        for svc in root.model.all():
            self._add(svc, announce=False)
        root.model.listen(self._on_change)
        try:
            reply = await bus.request_name(NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as e:
            reply = None
            why = e.text
        else:
            why = "another process owns it"
        if reply is not RequestNameReply.PRIMARY_OWNER:
            root.warn("unable to own ", NAME, " on the ", self.kind, " bus: ", why,
                      "; serving the socket only")
            await self.stop()
            return
        watch = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        watch.add_done_callback(self._lost)

    async def stop(self) -> None:
        self.stopping = True
        if self._root is not None:
            self.root().model.unlisten(self._on_change)
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.disconnect()
            try:
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            except Exception:
                pass

    def _lost(self, watch: "asyncio.Future[None]") -> None:
        if self.stopping or watch.cancelled():
            return
        exc = watch.exception()
        if exc is None or isinstance(exc, EOFError):
            why = "connection closed"
        else:
            why = str(exc) or type(exc).__name__
        self.root().model.unlisten(self._on_change)
        self.bus = None
        self.root().warn("lost the ", self.kind, " bus (", why, "); serving the socket only")

    # -- the model, followed ----------------------------------------------------

    def _on_change(self, kind: str, svc: Service) -> None:
        # called inside the root's model update: a bus failure must not reach it
        try:
            obj = self.objects.get(service_path(svc.name))
            if kind == REMOVED:
                if obj is not None:
                    self._remove(obj)
            elif obj is None:
                self._add(svc, announce=True)
            else:
                obj.update(svc)
        except Exception as e:
            self.root().warn("unable to publish ", svc.name, " on D-Bus: ", str(e))

    def _add(self, svc: Service, announce: bool) -> None:
        assert self.bus is not None
        obj = ServiceObject(self, svc)
        self.objects[obj.path] = obj
        self.bus.export(obj.path, obj)
        if announce:
            self.manager.ServiceAdded(_text(svc.name), obj.path)
            # the ObjectManager speaks from its own path (dbus-fast's export
            # also sends one from the object's path, which the spec does not ask)
            self.bus.send(Message.new_signal(
                MANAGER_PATH, OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}",
                [obj.path, {SERVICE_IFACE: _variants(svc)}]))

    def _remove(self, obj: ServiceObject) -> None:
        assert self.bus is not None
        del self.objects[obj.path]
        self.bus.unexport(obj.path, obj)
        self.manager.ServiceRemoved(_text(obj.svc.name), obj.path)
        self.bus.send(Message.new_signal(
            MANAGER_PATH, OBJECT_MANAGER, "InterfacesRemoved", "oas",
            [obj.path, [SERVICE_IFACE]]))

    # -- controls ---------------------------------------------------------------

    def known(self, name: str) -> Service:
        if (not name or len(name) > NAME_MAX or name.startswith("/")
                or any(part in ("", ".", "..") for part in name.split("/"))):
            raise DBusError(INVALID_ARGS, f"not a service name: {_shown(name)}")
        svc: Service | None = self.root().model.get(name)
        if svc is None:
            raise DBusError(NO_SUCH_SERVICE, f"no such service: {_shown(name)}")
        return svc

    def control(self, name: str, verb: str) -> None:
        self.known(name)
        try:
            self.root().send(name, VERBS[verb])
        except KeyError:
            raise DBusError(NO_SUCH_SERVICE, f"no such service: {_shown(name)}") from None
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise DBusError(SUPERVISE_NOT_RUNNING,
                                f"supervise not running in {_shown(name)}") from None
            raise DBusError(ErrorType.FAILED,
                            f"unable to control {_shown(name)}: {diag.reason(e)}") from None

    def _filter(self, msg: Message) -> "Message | bool | None":
        """Arguments and the caller, before dbus-fast dispatches a call.

        dbus-fast calls methods synchronously and does not tell them who
        called, so a control call is taken here: its caller's uid is asked
        of the bus daemon, then the method runs. A call without an interface
        field (D-Bus allows it, and a send_interface rule in a policy matches
        it) is matched by member, as dbus-fast dispatches it.
        """
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        if msg.path == MANAGER_PATH:
            target: ServiceInterface = self.manager
            signatures = self.manager_signatures
        elif msg.path in self.objects:
            target = self.objects[msg.path]
            signatures = self.service_signatures
        else:
            return None
        if msg.interface not in (None, target.name) or msg.member not in signatures:
            return None  # the standard interfaces, unknown methods: dbus-fast answers
        wanted = signatures[msg.member]
        if msg.signature != wanted:
            return Message.new_error(
                msg, INVALID_ARGS,
                f"{target.name}.{msg.member} takes ({wanted}), not ({msg.signature})")
        if msg.member not in CONTROL:
            return None
        task = asyncio.ensure_future(self._control(msg, target))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _control(self, msg: Message, target: ServiceInterface) -> None:
        try:
            uid = await self._uid(msg.sender or "")
            if uid not in self.allowed:
                raise DBusError(NOT_AUTHORIZED, f"uid {uid} may not control services")
            getattr(target, msg.member or "")(*msg.body)
            reply = Message.new_method_return(msg)
        except DBusError as e:
            reply = Message.new_error(msg, e.type, e.text)
        if self.bus is not None and not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            self.bus.send(reply)

    async def _uid(self, sender: str) -> int:
        # unique names are never reused by a bus daemon, so a uid stays right
        uid = self.uids.get(sender)
        if uid is not None:
            return uid
        if self.bus is None:
            raise DBusError(NOT_AUTHORIZED, "no bus to ask who is calling")
        reply = await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
            signature="s", body=[sender]))
        if reply is None or reply.message_type is not MessageType.METHOD_RETURN:
            raise DBusError(NOT_AUTHORIZED, "unable to tell who is calling")
        if len(self.uids) >= UID_CACHE:
            self.uids.clear()
        self.uids[sender] = uid = int(reply.body[0])
        return uid
