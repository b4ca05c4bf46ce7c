"""One benchmark's workbench: a temporary directory, the announcement FIFO,
processes spawned into it, and a teardown that leaves nothing behind.

Processes are started with posix_spawn (vfork and exec in glibc), so the
bench's own start-up cost for a client is small and the same for every
implementation."""

import os
import select
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench import proctree
from bench.announce import Announcements
from bench.impls import Impl


# Directories of finished rigs, kept until the bench ends when it sets this
# to a list (bench/__main__.py), removed at once otherwise. On a file system
# that skips recently deleted inodes when it makes a new one (ext4 without a
# journal, as on this VM), a file made within minutes of many deletions cost
# up to 20 times more (measured: 20 against 450 us a file, 200 directories
# of 8 files): each figure paid for the clean-up of the one before, and the
# 200-service start-up of one implementation for that of the run before it.
deferred: list[Path] | None = None


def remove_deferred() -> None:
    global deferred
    for top in deferred or []:
        shutil.rmtree(top, ignore_errors=True)
    deferred = None


def _until_readable(fds: set[int], deadline: float, what: str) -> float:
    """The time at which the last of fds (pidfds) became readable."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    pending = set(fds)
    while pending:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"{what} still there at the deadline")
        for fd, _ in poller.poll(left * 1000):
            pending.discard(fd)
            poller.unregister(fd)
    return time.perf_counter()


def sleep_until(t: float) -> None:
    left = t - time.perf_counter()
    if left > 0:
        time.sleep(left)


class Rig:
    def __init__(self, impl: Impl) -> None:
        self.impl = impl
        self.top = Path(tempfile.mkdtemp(prefix=f"dtd-bench-{impl.name}-"))
        self.ann = Announcements(self.top / "announce")
        self.stderr = self.top / "stderr"

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            # What the supervisors said is usually why a figure failed.
            exc.add_note(f"stderr of {self.impl.name}: {self.errors()}")
        self.close()

    def close(self) -> None:
        try:
            proctree.kill_all_below()
        finally:
            self.ann.close()
            if deferred is None:
                shutil.rmtree(self.top, ignore_errors=True)
            else:
                deferred.append(self.top)

    def service(self, name: str, down: bool = False, where: Path | None = None) -> Path:
        return self.ann.make_service((where or self.top) / name, down=down)

    def spawn(self, argv: list[str]) -> int:
        """Start argv in a session of its own, stdin and stdout on /dev/null,
        stderr appended to the rig's stderr file (shown when a figure
        fails)."""
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(self.stderr), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        ]
        return os.posix_spawn(argv[0], argv, self.impl.env, file_actions=actions, setsid=True)

    def client(self, argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
        """Wall time of one client call, in seconds."""
        t0 = time.perf_counter()
        pid = self.spawn(argv)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter()
        code = os.waitstatus_to_exitcode(status)
        if code not in ok:
            raise RuntimeError(f"{' '.join(argv)} exited {code}: {self.errors()}")
        return t1 - t0

    def client_until_gone(self, argv: list[str], service: int, timeout: float = 10.0) -> float:
        """Seconds from starting a client to the moment both the client has
        exited and the service process is gone. Both are watched through
        pidfds, which become readable when the process exits, whoever its
        parent is."""
        watched = os.pidfd_open(service)
        try:
            t0 = time.perf_counter()
            pid = self.spawn(argv)
            client = os.pidfd_open(pid)
            try:
                t1 = _until_readable({watched, client}, t0 + timeout, f"{' '.join(argv)}: service {service}")
            finally:
                os.close(client)
        finally:
            os.close(watched)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {self.errors()}")
        return t1 - t0

    def control_until_gone(self, service_dir: Path, command: bytes, service: int,
                           timeout: float = 10.0) -> float:
        """Seconds from writing command into the control FIFO ourselves to
        the service process being gone: the supervisor's share alone."""
        watched = os.pidfd_open(service)
        try:
            t0 = time.perf_counter()
            fd = os.open(service_dir / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, command)
            finally:
                os.close(fd)
            return _until_readable({watched}, t0 + timeout, f"service {service}") - t0
        finally:
            os.close(watched)

    def start_workers(self, dirs: list[Path]) -> None:
        """A supervisor for each of dirs, or the one process that supervises
        them all."""
        if self.impl.worker is None:
            self.start_scanner(dirs[0].parent, dirs)
        else:
            for d in dirs:
                self.spawn(self.impl.argv(self.impl.worker, d))

    def start_scanner(self, scan: Path, dirs: list[Path]) -> int:
        if self.impl.configure is not None:
            self.impl.configure(scan, dirs)
        return self.spawn(self.impl.argv(self.impl.scanner, scan))

    def wait_worker(self, service: Path, timeout: float = 10.0) -> None:
        """Until a supervisor reads service/supervise/control and ok (a
        non-blocking open for writing succeeds only then, ENXIO before) and
        has written its status: runsv makes ok after control, and runit's
        sv fails on a directory without it."""
        sup = service / "supervise"
        deadline = time.perf_counter() + timeout
        while True:
            try:
                if self.impl.socket is not None:
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.connect(str(service.parent / self.impl.socket))
                    return
                for fifo in self.impl.fifos:
                    os.close(os.open(sup / fifo, os.O_WRONLY | os.O_NONBLOCK))
                for name in self.impl.files:
                    os.stat(sup / name)
                return
            except OSError:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"no supervisor on {service} after {timeout} s: {self.errors()}")
                time.sleep(0.002)

    def errors(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")[-2000:].strip() or "(nothing on stderr)"
        except FileNotFoundError:
            return "(nothing on stderr)"
