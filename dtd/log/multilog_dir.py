"""One automatically rotated log directory of multilog, as daemontools keeps it.

Files inside DIR (modes as Debian's multilog 0.76 leaves them, umask 022):

| name | mode | what |
|---|---|---|
| ``lock`` | 0600 | held with ``flock(LOCK_EX|LOCK_NB)`` while multilog runs |
| ``current`` | 0644 writing, 0744 complete | the log being written |
| ``@TAI64N.s`` / ``.u`` | as current was | finished / found unfinished at start |
| ``previous``, ``processed`` | 0744 | input and output of the processor |
| ``state``, ``newstate`` | 0644 | the processor's fd 4 and fd 5 |

Writes go through :meth:`LogDir.c_write`, which is the reference's rotation
rule exactly: a write never passes ``size``; once ``current`` reaches
``size - 2000`` a write is cut after its last newline and ``current`` is
rotated right after a write that ends with a newline. Where the reference
cuts therefore depends on how its 512-byte output buffer chunks the stream,
so :class:`LogDir` also carries that buffer (``put``/``putc``/``flush``)
for the stretches where the chunking decides a file's size.
"""

import errno
import fcntl
import os
import signal
import stat
import time
from typing import Callable, TypeVar

from dtd import diag

T = TypeVar("T")

PROG = "multilog"
PAUSE = 5.0
BUFSIZE = 512  # struct cyclog's buf
OUTSIZE = 8192  # BUFFER_OUTSIZE: the largest direct write of a buffer_put
LATE = 2000  # rotate at a newline this close to the size
SIZE_MIN = 4096
SIZE_MAX = 16777215  # Debian's binary; djb's source says the same
SIZE_DEFAULT = 99999
NUM_MIN = 2
NUM_DEFAULT = 10
STAMP_LEN = 25
_BASE = 4611686018427387914  # 2**62 + 10

O_READ = os.O_RDONLY | os.O_NONBLOCK  # djb's open_read
O_APPEND = os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT  # 0600
O_TRUNC = os.O_WRONLY | os.O_NONBLOCK | os.O_TRUNC | os.O_CREAT  # 0644


class Stale:
    """The errno a later message may report although no call just failed:
    the reference prints errno after a crashed processor, and what it holds
    then is whatever failed last (EINTR after the ALRM that forced the
    rotation)."""

    value = 0


def stamp() -> bytes:
    """``@`` and 24 hex digits, as djb's timestamp(): microseconds from
    gettimeofday, with 500 ns added (taia_now)."""
    us = time.time_ns() // 1000
    return b"@%016x%08x" % (_BASE + us // 1_000_000, (us % 1_000_000) * 1000 + 500)


def pause(*parts: str | bytes, err: int | None = None) -> None:
    if err is not None:
        Stale.value = err
    diag.warn(PROG, *parts, diag.error_str(err))
    time.sleep(PAUSE)


def die(*parts: str | bytes, err: int | None) -> None:
    diag.fatal(PROG, *parts, diag.error_str(err), code=diag.EXIT_TEMP)


def _is_stamped(name: bytes) -> bool:
    return name[:1] == b"@" and len(name) >= STAMP_LEN


class LogDir:
    def __init__(self, name: bytes, size: int, num: int, processor: bytes | None) -> None:
        self.name = name
        self.size = size
        self.num = num
        self.processor = processor
        self.bytes = 0
        self.fddir = -1
        self.fdlock = -1
        self.fdcurrent = -1
        self.buf = bytearray()
        self.selected = True

    # ---- start --------------------------------------------------------

    def restart(self) -> None:
        """Open, lock and recover the directory (the reference's restart())."""
        d = self.name
        try:
            os.mkdir(d, 0o700)
        except OSError as e:
            Stale.value = e.errno or 0
        try:
            self.fddir = os.open(d, O_READ | os.O_CLOEXEC)
            # the reference fchdirs here; a file in the way fails now
            os.stat(b".", dir_fd=self.fddir)
            if not stat.S_ISDIR(os.fstat(self.fddir).st_mode):
                raise OSError(errno.ENOTDIR, "")
        except OSError as e:
            die("unable to open directory ", d, ": ", err=e.errno)
        try:
            self.fdlock = os.open(b"lock", O_APPEND | os.O_CLOEXEC, 0o600, dir_fd=self.fddir)
            fcntl.flock(self.fdlock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            die("unable to lock directory ", d, ": ", err=e.errno)
        try:
            st = os.stat(b"current", dir_fd=self.fddir)
        except OSError as e:
            Stale.value = e.errno or 0
            if e.errno != errno.ENOENT:
                die("unable to stat ", d, "/current: ", err=e.errno)
        else:
            if st.st_mode & 0o100:
                try:
                    fd = os.open(b"current", O_APPEND | os.O_CLOEXEC, 0o600, dir_fd=self.fddir)
                except OSError as e:
                    die("unable to append to ", d, "/current: ", err=e.errno)
                try:
                    os.fchmod(fd, 0o644)
                except OSError as e:
                    die("unable to set mode of ", d, "/current: ", err=e.errno)
                self.fdcurrent = fd
                self.bytes = st.st_size
                return
        self._unlink(b"state")
        self._unlink(b"newstate")
        flagprocessed = False
        try:
            flagprocessed = bool(os.stat(b"processed", dir_fd=self.fddir).st_mode & 0o100)
        except OSError as e:
            Stale.value = e.errno or 0
            if e.errno != errno.ENOENT:
                die("unable to stat ", d, "/processed: ", err=e.errno)
        if flagprocessed:
            self._unlink(b"previous")
            self.finish(b"processed", b"s")
        else:
            self._unlink(b"processed")
            self.finish(b"previous", b"u")
        self.finish(b"current", b"u")
        try:
            os.close(os.open(b"state", O_TRUNC | os.O_CLOEXEC, 0o644, dir_fd=self.fddir))
        except OSError as e:
            die("unable to write to ", d, "/state: ", err=e.errno)
        try:
            fd = os.open(b"current", O_APPEND | os.O_CLOEXEC, 0o600, dir_fd=self.fddir)
        except OSError as e:
            die("unable to write to ", d, "/current: ", err=e.errno)
        try:
            os.fchmod(fd, 0o644)
        except OSError as e:
            die("unable to set mode of ", d, "/current: ", err=e.errno)
        self.fdcurrent = fd
        self.bytes = 0

    def _unlink(self, name: bytes) -> bool:
        try:
            os.unlink(name, dir_fd=self.fddir)
            return True
        except OSError as e:
            Stale.value = e.errno or 0
            return False

    # ---- rotation -----------------------------------------------------

    def filesfit(self) -> bool:
        """True when fewer than num old files are left; else remove the
        oldest one (the smallest name, compared on its first 25 bytes)."""
        names = [n for n in map(os.fsencode, os.listdir(self.fddir)) if _is_stamped(n)]
        if len(names) < self.num:
            return True
        oldest = min(n[:STAMP_LEN] for n in names)
        for n in names:
            if n.startswith(oldest):
                self._unlink(n)
                break
        return False

    def finish(self, file: bytes, code: bytes) -> None:
        d = self.name
        while True:
            try:
                st = os.stat(file, dir_fd=self.fddir)
                break
            except OSError as e:
                if e.errno == errno.ENOENT:
                    Stale.value = e.errno
                    return
                pause("unable to stat ", d, "/", file, ", pausing: ", err=e.errno)
        if st.st_nlink == 1:
            while True:
                fn = stamp() + b"." + code
                try:
                    os.link(file, fn, src_dir_fd=self.fddir, dst_dir_fd=self.fddir)
                    break
                except OSError as e:
                    pause("unable to link to ", d, "/", fn, ", pausing: ", err=e.errno)
        while True:
            try:
                os.unlink(file, dir_fd=self.fddir)
                break
            except OSError as e:
                pause("unable to remove ", d, "/", file, ", pausing: ", err=e.errno)
        while True:
            try:
                if self.filesfit():
                    Stale.value = 0  # the reference clears errno to tell readdir's end
                    return
            except OSError as e:
                pause("unable to read ", d, ", pausing: ", err=e.errno)

    def fullcurrent(self) -> None:
        """Rotate: current becomes previous, then (processed) @stamp.s."""
        d, fdd = self.name, self.fddir
        while True:
            try:
                os.fsync(self.fdcurrent)
                break
            except OSError as e:
                pause("unable to write ", d, "/current to disk, pausing: ", err=e.errno)
        os.close(self.fdcurrent)
        while True:
            try:
                os.rename(b"current", b"previous", src_dir_fd=fdd, dst_dir_fd=fdd)
                break
            except OSError as e:
                pause("unable to rename current to previous in directory ", d, ", pausing: ",
                      err=e.errno)
        while True:
            try:
                self.fdcurrent = os.open(b"current", O_APPEND | os.O_CLOEXEC, 0o600, dir_fd=fdd)
                break
            except OSError as e:
                pause("unable to create ", d, "/current, pausing: ", err=e.errno)
        self.bytes = 0
        self._retry(lambda: os.fchmod(self.fdcurrent, 0o644),
                    "unable to set mode of ", d, "/current, pausing: ")
        self._retry(lambda: os.chmod(b"previous", 0o744, dir_fd=fdd),
                    "unable to set mode of ", d, "/previous, pausing: ")
        os.fchdir(fdd)  # the processor runs inside the directory
        if self.processor is None:
            self.finish(b"previous", b"s")
            return
        while not self.run_processor():
            diag.warn(PROG, "processor failed in ", d, ", pausing")
            time.sleep(PAUSE)
        for name, mode in ((b"processed", 0o744), (b"newstate", None)):
            fd = self._retry(lambda: os.open(name, O_APPEND | os.O_CLOEXEC, 0o600, dir_fd=fdd),
                             "unable to create ", d, "/", name, ", pausing: ")
            self._retry(lambda: os.fsync(fd), "unable to write ", d, "/", name,
                        " to disk, pausing: ")
            if mode is not None:
                self._retry(lambda: os.fchmod(fd, mode), "unable to set mode of ", d, "/",
                            name, ", pausing: ")
            os.close(fd)
        self._retry(lambda: os.unlink(b"previous", dir_fd=fdd),
                    "unable to remove ", d, "/previous, pausing: ")
        self._retry(lambda: os.rename(b"newstate", b"state", src_dir_fd=fdd, dst_dir_fd=fdd),
                    "unable to rename newstate to state in directory ", d, ", pausing: ")
        self.finish(b"processed", b"s")

    def _retry(self, call: Callable[[], T], *msg: str | bytes) -> T:
        while True:
            try:
                return call()
            except OSError as e:
                pause(*msg, err=e.errno)

    def run_processor(self) -> bool:
        """Run the processor once; True when it exited 0."""
        assert self.processor is not None
        while True:
            try:
                pid = os.fork()
                break
            except OSError as e:
                pause("unable to fork for processor in ", self.name, ", pausing: ", err=e.errno)
        if pid == 0:
            # a plain fork, not posix_spawn: glibc's posix_spawn leaves its
            # internal signals 32 and 33 ignored in the child
            try:
                self._exec_processor()
            finally:
                os._exit(111)
        while True:
            try:
                _, wstat = os.waitpid(pid, 0)
                break
            except ChildProcessError as e:
                pause("wait failed for processor in ", self.name, ", pausing: ", err=e.errno)
                return False
        if os.WIFSIGNALED(wstat):
            pause("processor crashed in ", self.name, ", pausing: ", err=Stale.value)
            return False
        return os.WEXITSTATUS(wstat) == 0

    def _exec_processor(self) -> None:
        """In the child: stdin previous, stdout processed, fd 4 state,
        fd 5 newstate, signals as multilog's parent left them, then sh -c."""
        assert self.processor is not None
        try:
            for sig in (signal.SIGTERM, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            for name, flags, to in ((b"previous", O_READ, 0), (b"processed", O_TRUNC, 1),
                                    (b"state", O_READ, 4), (b"newstate", O_TRUNC, 5)):
                fd = os.open(name, flags, 0o644, dir_fd=self.fddir)
                if fd == to:
                    os.set_inheritable(fd, True)
                else:
                    os.dup2(fd, to)
                    os.close(fd)
            os.execve(b"/bin/sh", [b"/bin/sh", b"-c", self.processor], os.environ)
        except OSError as e:
            diag.say(PROG, ": fatal: unable to run ", self.processor, ": ",
                     diag.error_str(e.errno))

    # ---- writing ------------------------------------------------------

    def c_write(self, data: memoryview) -> int:
        """Write a prefix of data to current, rotating as the reference does."""
        if self.bytes >= self.size:
            self.fullcurrent()
        n = len(data)
        if n >= self.size - self.bytes:
            n = self.size - self.bytes
        if self.bytes + n >= self.size - LATE:
            nl = bytes(data[:n]).rfind(b"\n") if n < 65536 else _rfind(data, n)
            if nl >= 0:
                n = nl + 1
        while True:
            try:
                w = os.write(self.fdcurrent, data[:n])
                if w > 0:
                    break
                err: int | None = 0
            except OSError as e:
                err = e.errno
            pause("unable to write to ", self.name, "/current, pausing: ", err=err)
        self.bytes += w
        if self.bytes >= self.size - LATE and data[w - 1] == 10:
            self.fullcurrent()
        return w

    def writev(self, parts: list[bytes | memoryview]) -> None:
        """Write parts whole; only for data that keeps current below
        size - 2000, where the reference neither cuts nor rotates."""
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            try:
                w = os.writev(self.fdcurrent, views)
                if w <= 0:
                    pause("unable to write to ", self.name, "/current, pausing: ", err=0)
                    continue
            except OSError as e:
                pause("unable to write to ", self.name, "/current, pausing: ", err=e.errno)
                continue
            self.bytes += w
            while w:
                if w >= len(views[0]):
                    w -= len(views.pop(0))
                else:
                    views[0] = views[0][w:]
                    w = 0

    def allwrite(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            view = view[self.c_write(view):]

    def put(self, data: bytes | bytearray | memoryview) -> None:
        """djb's buffer_put on a 512-byte buffer."""
        if len(data) > BUFSIZE - len(self.buf):
            self.flush()
            view = memoryview(data)
            n = OUTSIZE
            while len(view) > BUFSIZE:
                n = min(n, len(view))
                self.allwrite(view[:n])
                view = view[n:]
            self.buf += view
        else:
            self.buf += data

    def putc(self, data: bytes | bytearray | memoryview) -> None:
        """buffer_PUTC for each byte of data."""
        view = memoryview(data)
        while len(view):
            room = BUFSIZE - len(self.buf)
            if not room:
                self.flush()
                room = BUFSIZE
            self.buf += view[:room]
            view = view[room:]

    def flush(self) -> None:
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            self.allwrite(data)

    def quit(self) -> None:
        self.flush()
        self._retry(lambda: os.fsync(self.fdcurrent),
                    "unable to write ", self.name, "/current to disk, pausing: ")
        self._retry(lambda: os.fchmod(self.fdcurrent, 0o744),
                    "unable to set mode of ", self.name, "/current, pausing: ")


def _rfind(data: memoryview, n: int) -> int:
    # only the tail can hold the last newline; avoid copying a large chunk
    start = n
    while start > 0:
        lo = max(0, start - 65536)
        k = bytes(data[lo:start]).rfind(b"\n")
        if k >= 0:
            return lo + k
        start = lo
    return -1

