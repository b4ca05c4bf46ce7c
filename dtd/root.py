"""The root's core: svscan(8) with instant pickup and a memory.

The root scans a directory, has the forker fork one ``supervise`` worker per
service and one per ``log/`` subdirectory, and holds both ends of each
service-to-logger pipe for the life of the pair, so no line is lost while
either side restarts. New entries are noticed through inotify; a full rescan
every five seconds, as svscan does, is the safety net.

It keeps no state that the files cannot give back: a root that is killed and
started again finds each running worker through its lock (/proc/locks names
the holder), watches it through a pidfd instead of starting a second one,
and reopens the pair's pipe through /proc/PID/fd of a process that still
holds an end (each worker keeps its own end, as supervise does under svscan).

What the APIs show comes from the status files too: the root watches each
``supervise/`` directory and feeds every new status record to the model.
"""

import ctypes
import errno
import os
import resource
import signal
import time
from typing import TYPE_CHECKING, Callable, Protocol

from dtd import container, diag, info, scan, status
from dtd import inotify as ino
from dtd.forker import Forker, Request
from dtd.model import REMOVED, Model
from dtd.model import Service as Record
from dtd.proctitle import set_title

if TYPE_CHECKING:
    # imported for real only once the first workers are asked for (run()):
    # asyncio takes 40 ms to import, which the first services need not wait
    import asyncio

    from dtd.relay import Relay, Stream


class Adapter(Protocol):
    """A transport (the socket API, the bus) living in the root's loop."""

    async def start(self, root: "Root") -> None: ...

    async def stop(self) -> None: ...


RESCAN = 5.0  # seconds between full rescans, as svscan
RESPAWN = 1.0  # at most one new worker per directory per second
STOP_TIMEOUT = 10.0
STRAY_GRACE = 2.0  # --init: seconds between TERM and KILL for what outlives the services
STRAY_POLL = 0.02
TITLE_ERRORS = 400  # characters of recent errors in the process title
PR_SET_CHILD_SUBREAPER = 36
SHORTAGES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
SHORTAGE_QUIET = 10.0  # seconds between two warnings of a lasting shortage
RESERVE = 16  # descriptors the first scan leaves for the root's own start


class Side:
    """One supervised directory: a service, or its log."""

    __slots__ = ("path", "pid", "pidfd", "spawned", "timer", "stale")

    def __init__(self, path: str) -> None:
        self.path = path  # relative to the scan directory
        self.pid = 0
        self.pidfd = -1
        self.spawned = -RESPAWN
        self.timer: asyncio.TimerHandle | None = None
        self.stale = False  # its status could not be read: the next rescan tries again


class Service:
    __slots__ = ("name", "key", "main", "log", "pipe", "active", "stream", "run", "recovered")

    def __init__(self, name: str, key: tuple[int, int], log: bool) -> None:
        self.name = name
        self.key = key
        self.main = Side(name)
        self.log = Side(os.path.join(name, "log")) if log else None
        self.pipe: tuple[int, int] | None = None  # (read end, write end)
        self.active = True
        self.stream: Stream | None = None  # --log-stdout: the relay's view of the pipe
        self.run = 0  # the ./run whose unfinished last line the relay holds
        self.recovered = False  # a pipe of an earlier root was looked for

    def sides(self) -> list[Side]:
        return [self.main] if self.log is None else [self.main, self.log]


def _reopen_pipe(pid: int, fd: int) -> tuple[int, int] | None:
    """Both ends of the pipe that process pid has as descriptor fd.

    Linux opens the pipe itself, not a copy, through /proc/PID/fd/N, in
    whichever direction is asked for.
    """
    path = f"/proc/{pid}/fd/{fd}"
    try:
        if not os.readlink(path).startswith("pipe:"):
            return None
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        os.close(r)
        return None
    # the ends are handed to workers' children: they must block as pipes do
    os.set_blocking(r, True)
    os.set_blocking(w, True)
    return r, w


def _same_pipe(pid: int, a: int, b: int) -> bool:
    """True when descriptors a and b of pid are ends of one pipe: a worker of
    a --log-stdout service keeps the read end next to its output."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/{a}")
        return target.startswith("pipe:") and os.readlink(f"/proc/{pid}/fd/{b}") == target
    except OSError:
        return False


def _set_subreaper() -> None:
    """Orphans of a killed worker (its ./run) become our children, so that
    they are reaped here while a new worker watches them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Root:
    def __init__(self, scandir: str, prog: str = "dtd", stop_timeout: float = STOP_TIMEOUT,
                 forker: Forker | None = None, init: bool = False,
                 log_stdout: bool = False) -> None:
        self.scandir = os.path.abspath(scandir)
        self.prog = prog
        self.stop_timeout = stop_timeout
        self.init = init  # --init, or PID 1: reap, stop everything, essential services
        self.log_stdout = log_stdout
        self.relay: Relay | None = None
        self.relayed: dict[str, Service] = {}  # by name: services whose lines the relay writes
        self.code = 0  # the exit code, once stopping
        self.final = False  # --init: the services are down, the strays are being ended
        self.services: dict[tuple[int, int], Service] = {}
        self.waiting: dict[int, str] = {}  # inotify watch -> entry without a runnable run yet
        self.notify: ino.Inotify | None = None
        self.wd: int | None = None
        self.parent_wd: int | None = None  # the scan directory's parent, while it is missing
        self.scan_key: tuple[int, int] | None = None  # device and inode of the watched one
        self.errors = ""
        self.stopping = False
        self.rescan_pending = False
        self.done: asyncio.Future[int] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scanned = False
        self.stop_asked = False
        self.unwatched: list[tuple[Service, Side]] = []  # pidfds to hand to the loop
        self.forker = forker or Forker()
        # the first scan's requests for workers, sent to the forker together
        self.batch: list[tuple[Service, Side, Request]] | None = None
        self.model = Model(self.scandir)
        self.adapters: list[Adapter] = []
        self.on_ready: Callable[[], None] | None = None
        self.status_watches: dict[int, tuple[Service, Side]] = {}
        self.quiet_until = 0.0  # of the warning about a shortage of descriptors

    # -- diagnostics: stderr and, as readproctitle shows svscan's, the title --

    def warn(self, *parts: str) -> None:
        diag.warn(self.prog, *parts)
        self.errors = (self.errors + " " + "".join(parts).replace("\n", " "))[-TITLE_ERRORS:]
        self.show_title()

    def show_title(self) -> None:
        set_title(f"{self.prog} {self.scandir}:{self.errors}", self.prog)

    # -- running --------------------------------------------------------------

    def first_scan(self) -> None:
        """Start every service found, before the event loop exists: the
        workers get going while the rest of the root is still importing."""
        _set_subreaper()
        # a stop asked for before the loop runs is carried out once it does
        for sig in self.stop_signals():
            signal.signal(sig, self.stop_early)
        self.model.listen(self.on_record)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.show_title()
        try:
            self.notify = ino.Inotify()
        except OSError as e:
            self.warn("unable to watch ", self.scandir, ": ", diag.reason(e),
                      "; rescanning every 5 seconds only")
        # descriptors kept back from the scan: under a low limit the
        # services take what they can, and the imports and the event loop
        # that follow still find what they need
        reserve = []
        for _ in range(RESERVE):
            try:
                reserve.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                break
        self.batch = []
        try:
            self.rescan(force=True)
        finally:
            batch, self.batch = self.batch, None
            self.spawn_batch(batch)
            for fd in reserve:
                os.close(fd)
        self.scanned = True

    def on_loop_error(self, loop: "asyncio.AbstractEventLoop", context: dict[str, object]) -> None:
        """Out of descriptors, asyncio's accept loop reports each connection
        it cannot take, with a traceback, and tries again every second: a
        warning now and then says as much."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in SHORTAGES:
            now = time.monotonic()
            if now >= self.quiet_until:
                self.quiet_until = now + SHORTAGE_QUIET
                self.warn("unable to accept connections: ", diag.reason(exc))
            return
        loop.default_exception_handler(context)

    def stop_signals(self) -> tuple[int, ...]:
        """SIGTERM and SIGINT stop everything; with --init SIGQUIT too, as
        s6-svscan does (its loggers are drained all the same here)."""
        if self.init:
            return (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
        return (signal.SIGTERM, signal.SIGINT)

    def stop_early(self, signum: int, frame: object) -> None:
        self.stop_asked = True

    async def run(self) -> int:
        import asyncio

        if not self.scanned:
            self.first_scan()
        loop = self.loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.on_loop_error)
        self.done = loop.create_future()
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        loop.add_signal_handler(signal.SIGHUP, self.rescan_soon)
        for sig in self.stop_signals():
            loop.add_signal_handler(sig, self.stop)
        if self.stop_asked:
            loop.call_soon(self.stop)
        if self.notify is not None:
            loop.add_reader(self.notify.fd, self.on_inotify)
        if self.relay is not None:
            loop.add_reader(self.relay.fileno(), self.relay.on_events)
        for svc, side in self.unwatched:
            if side.pidfd >= 0:
                loop.add_reader(side.pidfd, self.worker_gone, svc, side)
        self.unwatched.clear()
        self.reap()
        for adapter in self.adapters:
            try:
                await adapter.start(self)
            except Exception as e:  # a transport that cannot start is not fatal
                self.warn("unable to start ", type(adapter).__name__, ": ", str(e))
        if self.on_ready is not None:
            self.on_ready()
        self.tick()
        code = await self.done
        for adapter in self.adapters:
            try:
                await adapter.stop()
            except Exception:
                pass
        return code

    def tick(self) -> None:
        if self.stopping:
            return
        self.rescan(force=True)
        self.later(RESCAN, self.tick)

    def watch_scandir(self) -> None:
        """Watch the scan directory; while it is missing, its parent, for
        the moment it is made again or renamed into place.

        A removed directory that some process still has as its working
        directory sends no IN_DELETE_SELF until it is let go, so each
        rescan also checks that the watched directory is still the one at
        the scan directory's path."""
        if self.notify is None:
            return
        try:
            st = os.stat(self.scandir)
            key: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        if self.wd is not None:
            if key == self.scan_key:
                return
            self.notify.rm_watch(self.wd)
            self.wd = None
        mask = (ino.IN_CREATE | ino.IN_MOVED_TO | ino.IN_DELETE | ino.IN_MOVED_FROM
                | ino.IN_ONLYDIR | ino.IN_DELETE_SELF | ino.IN_MOVE_SELF)
        try:
            self.wd = self.notify.add_watch(self.scandir, mask)
            self.scan_key = key
        except OSError:
            if self.parent_wd is None:
                try:
                    self.parent_wd = self.notify.add_watch(
                        os.path.dirname(self.scandir), ino.IN_CREATE | ino.IN_MOVED_TO | ino.IN_ONLYDIR)
                except OSError:
                    pass
            return
        if self.parent_wd is not None:
            self.notify.rm_watch(self.parent_wd)
            self.parent_wd = None

    def on_inotify(self) -> None:
        assert self.notify is not None
        scan_needed = False
        for wd, mask, name in self.notify.read():
            watched = self.status_watches.get(wd)
            if watched is not None:
                if mask & ino.IN_IGNORED:
                    del self.status_watches[wd]
                elif name in ("status", "info", status.DOWN):
                    self.refresh(*watched)
                continue
            if wd == self.parent_wd:
                if mask & ino.IN_IGNORED:
                    self.parent_wd = None
                elif name == os.path.basename(self.scandir):
                    scan_needed = True
                continue
            if wd == self.wd and mask & (ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_IGNORED):
                if mask & ino.IN_MOVE_SELF:
                    self.notify.rm_watch(wd)  # it would follow the directory away
                self.wd = None
            if mask & ino.IN_IGNORED:
                self.waiting.pop(wd, None)
            scan_needed = True
        if scan_needed:
            self.rescan_soon()

    # -- the model: what the status files say --------------------------------

    def watch_status(self, svc: Service, side: Side) -> None:
        """Follow side's status record: supervise renames status.new over it
        at every change. The directory is made here if the worker has not
        made it yet, as it would (mode 0700), so the watch is never late."""
        if self.notify is None:
            return
        path = os.path.join(self.scandir, side.path, status.DIR)
        try:
            os.mkdir(path, 0o700)
        except OSError:
            pass
        # the status record, and the down file (normally up or not)
        for watched, mask in ((path, ino.IN_MOVED_TO),
                              (os.path.dirname(path), ino.IN_CREATE | ino.IN_DELETE
                               | ino.IN_MOVED_TO | ino.IN_MOVED_FROM)):
            try:
                wd = self.notify.add_watch(watched, mask | ino.IN_ONLYDIR)
            except OSError:
                continue
            self.status_watches[wd] = (svc, side)

    def refresh(self, svc: Service, side: Side) -> None:
        directory = os.path.join(self.scandir, side.path)
        try:
            st = status.read(directory)
        except FileNotFoundError:
            st = None
        except OSError:
            # out of descriptors, say: what the model shows stays as it was
            # rather than turn into "down", until a rescan can read it
            side.stale = True
            return
        side.stale = False
        try:
            # written by our worker next to status, renamed into the same
            # directory: the same inotify events bring both
            inf = info.read(os.path.join(directory, info.INFO))
        except OSError:
            inf = None
        normally_up = not os.path.exists(os.path.join(directory, status.DOWN))
        self.model.update(side.path, directory, st, normally_up, side.pid != 0, inf)

    def send(self, name: str, commands: bytes) -> None:
        """Control bytes for a service, by name, as svc writes them.

        Raises KeyError for an unknown name and OSError (ENXIO when no
        supervise runs) when the control FIFO cannot take them.
        """
        svc = self.model.get(name)
        if svc is None:
            raise KeyError(name)
        status.send(svc.directory, commands)

    def rescan_soon(self) -> None:
        if not self.rescan_pending and not self.stopping:
            self.rescan_pending = True
            assert self.loop is not None
            self.loop.call_soon(self.rescan, False)

    def rescan(self, force: bool = False) -> None:
        """svscan's doit(): start what is new or not running, forget what is
        gone and has no worker left. Without force, an entry whose run is not
        yet executable is watched until it is (or until the next full scan)."""
        self.rescan_pending = False
        if self.stopping:
            return
        self.watch_scandir()
        try:
            entries, warnings = scan.scan(self.scandir)
        except OSError as e:
            self.warn("unable to read directory: ", diag.reason(e))
            return
        for w in warnings:
            self.warn(w)
        for known in self.services.values():
            known.active = False
        for entry in entries:
            key = (entry.dev, entry.ino)
            found = self.services.get(key)
            if found is None:
                if not force and not scan.runnable(self.scandir, entry.name):
                    self.wait_for_run(entry.name)
                    continue
                found = Service(entry.name, key, scan.has_log(self.scandir, entry.name))
                self.services[key] = found
            svc = found
            if svc.name != entry.name:  # renamed: the same inode, the same service
                for side in svc.sides():
                    self.model.remove(side.path)
                if self.relayed.get(svc.name) is svc:
                    del self.relayed[svc.name]
                    self.relayed[entry.name] = svc
                svc.name = entry.name
                svc.main.path = entry.name
                if svc.log is not None:
                    svc.log.path = os.path.join(entry.name, "log")
                if svc.stream is not None and self.relay is not None:
                    self.relay.rename(svc.stream, entry.name)
                for side in svc.sides():
                    side.stale = True  # listed again, under the new name
            svc.active = True
            self.ensure(svc)
            for side in svc.sides():
                if side.stale and side.pid:
                    self.refresh(svc, side)
        for key, svc in list(self.services.items()):
            if not svc.active and all(s.pid == 0 for s in svc.sides()):
                self.forget(svc)

    def wait_for_run(self, name: str) -> None:
        if self.notify is None or name in self.waiting.values():
            return
        mask = ino.IN_CREATE | ino.IN_MOVED_TO | ino.IN_ATTRIB | ino.IN_CLOSE_WRITE | ino.IN_ONLYDIR
        try:
            self.waiting[self.notify.add_watch(os.path.join(self.scandir, name), mask)] = name
        except OSError:
            pass

    def forget(self, svc: Service) -> None:
        del self.services[svc.key]
        for side in svc.sides():
            self.model.remove(side.path)
        self.close_pipe(svc)
        for side in svc.sides():
            if side.timer:
                side.timer.cancel()

    def close_pipe(self, svc: Service) -> None:
        if svc.stream is not None and self.relay is not None:
            self.relay.remove(svc.stream)
            svc.stream = None
            if self.relayed.get(svc.name) is svc:
                del self.relayed[svc.name]
        if svc.pipe:
            for fd in svc.pipe:
                os.close(fd)
            svc.pipe = None

    # -- workers --------------------------------------------------------------

    def ensure(self, svc: Service) -> None:
        """Every side of svc has a worker: adopted if one runs, else forked."""
        if svc.pipe is None and not svc.recovered:
            # once: a pipe an earlier root left is there when this root
            # first sees the service, or never (it reads /proc/locks)
            svc.recovered = True
            svc.pipe = self.recover_pipe(svc) if svc.log is not None else self.recover_relayed(svc)
        for side in svc.sides():
            if side.pid == 0 and side.timer is None:
                self.adopt(svc, side) or self.spawn(svc, side)
        self.make_pipe(svc)

    def make_pipe(self, svc: Service) -> bool:
        """The pipe of a log pair, or with --log-stdout of a service without
        a logger; the latter's is given to the relay. False when it is
        needed and cannot be made: nothing of svc may start then."""
        if svc.pipe is None and (svc.log is not None or self.log_stdout):
            try:
                svc.pipe = os.pipe2(os.O_CLOEXEC)
            except OSError as e:
                # svscan's warning; the next rescan tries again
                self.warn("unable to create pipe for ", svc.name, ": ", diag.reason(e))
                return False
        if svc.log is None and svc.pipe is not None and svc.stream is None:
            if self.relay is None:
                from dtd.relay import Relay

                try:
                    self.relay = Relay(1, self.later)
                except OSError as e:
                    self.warn("unable to relay the output of ", svc.name, ": ", diag.reason(e))
                    return False
                if self.loop is not None:
                    self.loop.add_reader(self.relay.fileno(), self.relay.on_events)
            svc.stream = self.relay.add(svc.name, *svc.pipe)
            self.relayed[svc.name] = svc
        return True

    def recover_relayed(self, svc: Service) -> tuple[int, int] | None:
        """The pipe of a --log-stdout service that outlived the previous
        root: its worker has the write end as output and keeps the read end
        as descriptor 3. Relayed whether or not this root was asked to: a
        pipe that nobody empties would block the service."""
        owner = status.lock_owner(os.path.join(self.scandir, svc.main.path))
        if owner and _same_pipe(owner, 1, 3):
            return _reopen_pipe(owner, 1)
        return None

    def recover_pipe(self, svc: Service) -> tuple[int, int] | None:
        """The pipe of a pair that outlived the previous root, if any process
        of the pair still holds it: a worker or its ./run."""
        assert svc.log is not None
        candidates: list[tuple[int, int]] = []
        for side, fd in ((svc.main, 1), (svc.log, 0)):
            path = os.path.join(self.scandir, side.path)
            owner = status.lock_owner(path)
            if owner:
                candidates.append((owner, fd))
            try:
                st = status.read(path)
            except OSError:
                st = None
            if st is not None and st.pid:
                candidates.append((st.pid, fd))
        for pid, fd in candidates:
            pipe = _reopen_pipe(pid, fd)
            if pipe:
                return pipe
        return None

    def adopt(self, svc: Service, side: Side) -> bool:
        pid = status.lock_owner(os.path.join(self.scandir, side.path))
        if not pid:
            return False
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        self.track(svc, side, pid, pidfd)
        return True

    def spawn(self, svc: Service, side: Side) -> bool:
        if not self.make_pipe(svc):
            side.timer = self.later(RESPAWN, self.respawn, svc, side)
            return False
        now = time.monotonic()
        if now < side.spawned + RESPAWN:
            side.timer = self.later(side.spawned + RESPAWN - now, self.respawn, svc, side)
            return False
        side.spawned = now
        pipe = keep = None
        if svc.pipe is not None:
            pipe = svc.pipe[0] if side is svc.log else svc.pipe[1]
            if svc.log is None:
                keep = svc.pipe[0]  # the pipe outlives the root: its worker holds a reader
        request = (self.scandir, svc.name, side is svc.log, pipe, keep)
        if self.batch is not None:
            self.batch.append((svc, side, request))
            return True
        answer = self.forker.spawn_many([request])[0]
        return self.spawned(svc, side, answer)

    def spawn_batch(self, batch: "list[tuple[Service, Side, Request]]") -> None:
        """The workers of the first scan, asked of the forker all at once."""
        if batch:
            answers = self.forker.spawn_many([request for _, _, request in batch])
            for (svc, side, _), answer in zip(batch, answers):
                self.spawned(svc, side, answer)

    def spawned(self, svc: Service, side: Side, answer: "int | OSError") -> bool:
        try:
            if isinstance(answer, OSError):
                raise answer
            pidfd = os.pidfd_open(answer)
        except OSError as e:
            if e.errno != errno.ESRCH:
                self.warn("unable to start supervise ", side.path, ": ", diag.reason(e))
            # gone already, or no worker at all: try again in a second
            side.timer = self.later(RESPAWN, self.respawn, svc, side)
            return False
        self.track(svc, side, answer, pidfd)
        return True

    def later(self, delay: float, fn: Callable[..., None], *args: object) -> "asyncio.TimerHandle | None":
        """A timer; before the loop runs there is none, and the first full
        rescan, moments later, does what it would have done."""
        if self.loop is None:
            return None
        return self.loop.call_later(delay, fn, *args)

    def respawn(self, svc: Service, side: Side) -> None:
        side.timer = None
        if not self.stopping and self.services.get(svc.key) is svc and side.pid == 0:
            self.spawn(svc, side)

    def track(self, svc: Service, side: Side, pid: int, pidfd: int) -> None:
        side.pid, side.pidfd = pid, pidfd
        if self.loop is None:
            self.unwatched.append((svc, side))
        else:
            self.loop.add_reader(pidfd, self.worker_gone, svc, side)
        self.watch_status(svc, side)
        self.refresh(svc, side)

    def worker_gone(self, svc: Service, side: Side) -> None:
        assert self.loop is not None
        self.loop.remove_reader(side.pidfd)
        os.close(side.pidfd)
        side.pid, side.pidfd = 0, -1
        self.reap()
        self.refresh(svc, side)
        if self.stopping:
            self.stop_step()
        elif svc.active and self.services.get(svc.key) is svc:
            self.spawn(svc, side)
        elif all(s.pid == 0 for s in svc.sides()):
            self.forget(svc)

    def reap(self) -> None:
        """Collect every exited child: workers (watched by pidfd) and the
        orphans that come to us as subreaper."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    # -- --init: essential services; --log-stdout: last lines -----------------

    def on_record(self, kind: str, rec: Record) -> None:
        if kind == REMOVED:
            return
        svc = self.relayed.get(rec.name)
        if svc is not None and svc.stream is not None and self.relay is not None:
            if svc.run and rec.pid != svc.run:
                # its ./run is gone: an unfinished last line will not end
                self.relay.flush(svc.stream)
            svc.run = rec.pid
        if self.init and not self.stopping and container.is_essential(rec):
            code = container.exit_code(rec)
            self.warn("essential service ", rec.name, " stopped: exiting ", str(code))
            if self.loop is None:
                self.stop_asked = True  # carried out once the loop runs
                self.code = code
            else:
                self.stop(code)

    # -- stopping: every service down, loggers drained, then exit -------------

    def stop(self, code: int | None = None) -> None:
        if self.stopping:
            return
        self.stopping = True
        if code is not None:
            self.code = code
        loop = self.loop
        assert loop is not None
        if self.notify is not None:
            loop.remove_reader(self.notify.fd)
        for svc in self.services.values():
            for side in svc.sides():
                if side.timer:
                    side.timer.cancel()
                    side.timer = None
            self.control(svc.main, b"dx")
        loop.call_later(self.stop_timeout, self.stop_late)
        self.stop_step()

    def stop_step(self) -> None:
        """A logger is stopped by end of input, so that it writes all its
        service said: once the service side is gone, the root closes its
        ends and the logger, told to run once and exit, reads to the end.
        The relay likewise writes out all a service said once it is gone."""
        if self.final:
            return
        for svc in self.services.values():
            if svc.main.pid == 0 and svc.pipe is not None:
                if svc.log is not None:
                    self.control(svc.log, b"ox")
                self.close_pipe(svc)
        if all(s.pid == 0 for svc in self.services.values() for s in svc.sides()):
            self.finish()

    def stop_late(self) -> None:
        for svc in self.services.values():
            self.control(svc.main, b"kx")
            if svc.log is not None:
                self.control(svc.log, b"dx")
        self.later(2.0, self.finish)

    def finish(self) -> None:
        """Exit with self.code; with --init, once every process left below
        the root (a service's daemon that escaped its group, an orphan) has
        been sent TERM and, STRAY_GRACE seconds later, KILL: a container
        must stop."""
        self.forker.stop()
        for svc in self.services.values():
            if svc.stream is not None:
                self.close_pipe(svc)
        if self.init and not self.final:
            self.final = True
            strays = container.descendants(os.getpid())
            container.signal_all(strays, signal.SIGTERM, signal.SIGCONT)
            self.end_strays(time.monotonic() + STRAY_GRACE)
            return
        self.final_exit()

    def end_strays(self, deadline: float) -> None:
        """Wait for the strays to go; KILL them at the deadline."""
        self.reap()
        strays = container.descendants(os.getpid())
        now = time.monotonic()
        if not strays or now >= deadline + STRAY_GRACE:
            # a process that even KILL does not end (stuck in the kernel)
            # does not keep us: as PID 1 our exit ends it anyway
            self.final_exit()
            return
        if now >= deadline:
            container.signal_all(strays, signal.SIGKILL)
        # no event says when a grandchild is gone: looked at again shortly
        self.later(STRAY_POLL, self.end_strays, deadline)

    def final_exit(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.code)

    def control(self, side: Side, commands: bytes) -> None:
        """Write commands into a worker's control FIFO, as svc does."""
        try:
            status.send(os.path.join(self.scandir, side.path), commands)
        except OSError:
            pass
