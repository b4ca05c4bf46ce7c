"""The forker: a lean process that forks the workers for the root.

A forked worker costs the pages it writes after the fork, and how many it
writes grows with its parent's heap: forked from the root (asyncio, the bus,
the API) a worker measured 1.9 MiB PSS here, forked from this process, a
fresh interpreter that has imported only the worker, 1.4 MiB. So the root
starts this process once, with ``python -m dtd.forker FD``, and asks it over
a SOCK_SEQPACKET socket for each new worker; the answer is the worker's pid,
which the root then watches through a pidfd, as it does for workers it adopts.

Request: ``id NUL scandir NUL name NUL ("main" | "log")`` with the pair's
pipe end, if any, and the end the worker keeps (the read end of a
``--log-stdout`` service's pipe), passed as SCM_RIGHTS. Reply, from the
worker itself: the request's id, a space, and its pid in decimal (``-errno``
instead of the pid when the request is bad). The id lets the root send many
requests before the first answer comes: at start-up it asks for every worker
at once.
"""

import _socket
import os
import resource
import signal
import sys
import time

from dtd import diag, supervise
from dtd.proctitle import set_title

MAX_REQUEST = 65536
# children waiting for a request at any time: a burst of new services (200
# at start-up) is served without waiting for a fork each; each waiting child
# costs about 0.5 MiB PSS
WAITING = 4
REPLY_TIMEOUT = 5.0

# scandir, name, log or not, the pipe end it gets, the pipe end it keeps
Request = tuple[str, str, bool, "int | None", "int | None"]
KEPT_FD = 3  # where a worker keeps the read end of its service's relayed pipe


# socket.py's send_fds and recv_fds on the C module: importing socket.py
# (selectors, enum) delayed the first worker's start 9 ms, in the root and
# again in the forker, both on the way to it; array would cost 2 ms more
def send_fds(sock: _socket.socket, msg: bytes, fds: list[int]) -> None:
    data = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)] if fds else [])


def recv_fds(sock: _socket.socket, size: int, maxfds: int) -> tuple[bytes, list[int]]:
    msg, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_LEN(maxfds * 4))
    fds = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True)
                    for i in range(0, len(data) - 3, 4)]
    return msg, fds


def become_worker(scandir: str, name: str, log: bool, pipe: int | None,
                  keep: int | None = None) -> None:
    """In a forked child: turn into ``supervise NAME``; never returns.

    svscan runs ``supervise NAME`` in the scan directory and ``supervise
    log`` in the service directory; so do we, so that messages name the same
    paths. The pipe end becomes the logger's stdin or the service's stdout.
    keep, the read end of a relayed service's pipe, stays open as KEPT_FD
    (close-on-exec: ./run does not get it), so the pipe has a reader, and
    the root a way back to it, while no root runs.
    """
    code = diag.EXIT_TEMP
    title = os.path.join(name, "log") if log else name
    try:
        os.chdir(scandir)
        if log:
            os.chdir(name)
        if pipe is not None:
            os.dup2(pipe, 0 if log else 1)
        first = 3
        if keep is not None:
            kept = os.dup(keep)  # not inheritable, as Python makes every descriptor
            if kept != KEPT_FD:
                os.dup2(kept, KEPT_FD, inheritable=False)
                os.close(kept)
            first = KEPT_FD + 1
        # the root's socket, other services' pipes: none of ours
        os.closerange(first, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.setsid()
        set_title("supervise " + title, supervise.PROG)
        code = supervise.Worker("log" if log else name).run()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else diag.EXIT_TEMP
    except BaseException as e:  # a worker must never return into the forker's loop
        diag.warn(supervise.PROG, "unexpected error in ", title, ": ", repr(e))
    finally:
        os._exit(code)


def prewarm(rounds: int = 3) -> None:
    """Run the start and the first exit of a worker a few times, here,
    before the heap is frozen: CPython's first runs of a code path write to shared
    pages (the specializing interpreter's counters, lazily made caches and
    objects), and each forked worker would copy them. Done once in the
    forker, the copies are not made in every worker: measured 25 to 35
    pages fewer written per worker. Best effort: any failure ends it.
    The service is a throw-away directory whose run is /bin/true.
    """
    if not os.access("/bin/true", os.X_OK):
        return
    base = _scratch()
    d = os.path.join(base, f".dtd-prewarm-{os.getpid()}")
    try:
        os.mkdir(d, 0o700)
    except OSError:
        return  # there already: not ours to warm up in, nor to remove
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.symlink("/bin/true", os.path.join(d, "run"))
        for _ in range(rounds):
            w = supervise.Worker(d)
            w.setup()
            w.read_commands()
            if w.st.pid:
                _, wstatus = os.waitpid(w.st.pid, 0)
                w.exited(wstatus)
            for fd in (w.fdlock, w.fdcontrol, w.fdcontrolwrite, w.fdok):
                os.close(fd)
            if w.notify_sock is not None:
                w.notify_sock.close()
            os.fchdir(here)
    except (OSError, SystemExit):
        pass
    finally:
        os.fchdir(here)
        os.close(here)
        _remove_service(d)


def _scratch() -> str:
    """Where the prewarm's throw-away service goes: /dev/shm when it is a
    writable tmpfs that allows exec, since the files a worker makes cost
    nothing to allocate there (on this machine's ext4 prewarming cost 8.4
    ms in /tmp, 3.8 ms there, on the way to the first worker); else
    $TMPDIR or /tmp."""
    try:
        if os.access("/dev/shm", os.W_OK | os.X_OK) and not (
                os.statvfs("/dev/shm").f_flag & os.ST_NOEXEC):
            return "/dev/shm"
    except OSError:
        pass
    return os.environ.get("TMPDIR") or "/tmp"


def _remove_service(d: str) -> None:
    sup = os.path.join(d, "supervise")
    try:
        names = os.listdir(sup)
    except OSError:
        names = []
    for name in names:
        try:
            os.unlink(os.path.join(sup, name))
        except OSError:
            pass
    for path, remove in ((sup, os.rmdir), (os.path.join(d, "run"), os.unlink), (d, os.rmdir)):
        try:
            remove(path)
        except OSError:
            pass


def serve(sock: _socket.socket) -> int:
    """Keep children waiting for requests; fork a new one as each is taken.

    The child, not this process, receives the request and answers with its
    own pid, so that after each fork this process writes next to nothing:
    every page it wrote after forking a worker would stay behind as that
    worker's private copy (bench/worker_pages.py measured 200 such pages a
    worker with a loop that parsed requests after forking).
    """
    prewarm()  # before SIGCHLD is ignored: it waits for its ./run
    # workers are watched by the root through pidfds; the kernel reaps them
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the root decides when we stop
    set_title("dtd-forker", "dtd-forker")
    taken_r, taken_w = os.pipe2(os.O_CLOEXEC)
    import gc
    gc.freeze()  # what exists now stays in pages shared with the workers
    waiting = 0
    while True:
        while waiting < WAITING:
            try:
                pid = os.fork()
            except OSError:
                if waiting:
                    break
                # no process to be had now: the root's request waits meanwhile
                time.sleep(1)
                continue
            if pid == 0:
                os.close(taken_r)
                take_request(sock, taken_w)
            waiting += 1
        if os.read(taken_r, 1) != b"w":
            return 0  # the root is gone
        waiting -= 1


def take_request(sock: _socket.socket, taken: int) -> None:
    """In the waiting child: receive one request, tell the forker it was
    taken, answer the root with our pid, and become that worker."""
    while True:
        try:
            msg, fds = recv_fds(sock, MAX_REQUEST, 2)
            break
        except InterruptedError:
            continue
        except OSError:
            msg, fds = b"", []
            break
    try:
        # the forker may be gone already when the root is
        os.write(taken, b"w" if msg else b"x")
        os.close(taken)
    except OSError:
        pass
    if not msg:
        os._exit(0)
    ident, _, rest = msg.partition(b"\0")
    try:
        scandir, name, which = (os.fsdecode(p) for p in rest.split(b"\0"))
    except ValueError:
        try:
            sock.send(ident + b" -22")
        except OSError:
            pass
        os._exit(diag.EXIT_USAGE)
    try:
        sock.send(ident + b" %d" % os.getpid())
    except OSError:
        pass  # the root died since it asked: a new root will adopt us
    sock.close()
    become_worker(scandir, name, which == "log", fds[0] if fds else None,
                  fds[1] if len(fds) > 1 else None)


class Forker:
    """The root's end: starts the forker and asks it for workers."""

    def __init__(self) -> None:
        self.sock: _socket.socket | None = None
        self.pid = 0
        self.serial = 0  # of spawn_many calls: ids of their requests

    def start(self) -> None:
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        os.set_inheritable(theirs.fileno(), True)
        env = dict(os.environ)
        self.pid = os.posix_spawn(
            sys.executable, [sys.executable, "-m", "dtd.forker", str(theirs.fileno())], env,
            setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD),
            setsigmask=())
        theirs.close()
        # a forker that cannot fork must not hang the root
        ours.settimeout(REPLY_TIMEOUT)
        self.sock = ours

    def spawn_many(self, requests: "list[Request]") -> "list[int | OSError]":
        """Fork a worker for each request, all asked for before the first
        answer is awaited: the waiting children take them as fast as they
        are scheduled, instead of one round trip after another."""
        for attempt in (1, 2):
            if self.sock is None:
                self.start()
            assert self.sock is not None
            self.serial += 1
            base = self.serial * 1_000_000
            answers: dict[int, int | OSError] = {}
            try:
                for i, (scandir, name, log, pipe, keep) in enumerate(requests):
                    msg = b"\0".join((b"%d" % (base + i), os.fsencode(scandir),
                                      os.fsencode(name), b"log" if log else b"main"))
                    send_fds(self.sock, msg, [fd for fd in (pipe, keep) if fd is not None])
                while len(answers) < len(requests):
                    ident, _, pid = self.sock.recv(64).partition(b" ")
                    i = int(ident) - base
                    if not 0 <= i < len(requests):
                        continue  # the late answer to an abandoned request
                    n = int(pid)
                    answers[i] = OSError(-n, os.strerror(-n)) if n < 0 else n
            except (OSError, ValueError):
                # the forker died: what was answered stands; the rest fails
                # here and is asked again by the root a second later (a
                # worker whose answer was lost is adopted by its lock then)
                self.stop()
                if answers:
                    return [answers.get(i, OSError(5, "the forker does not answer"))
                            for i in range(len(requests))]
                continue
            return [answers[i] for i in range(len(requests))]
        return [OSError(5, "the forker does not answer")] * len(requests)

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return serve(_socket.socket(fileno=int(args[0])))


if __name__ == "__main__":
    sys.exit(main())
