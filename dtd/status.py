"""The supervise/ directory: status record, control bytes, ok FIFO, lock.

``supervise/status`` is runit's 20-byte layout; its first 18 bytes are
daemontools' format exactly, so djb's svstat, runit's sv and node_exporter's
runit collector all read it:

    0-11   TAI64N of the last pid change
    12-15  pid, little-endian, 0 when down
    16     1 if paused
    17     'u' want up, 'd' want down, 0 run once
    18     1 if TERM was sent and the service has not exited yet (runit)
    19     0 down, 1 run, 2 finish (runit)
"""

import errno
import os

from dtd import tai64

DIR = "supervise"
STATUS = "supervise/status"
STATUS_NEW = "supervise/status.new"
STAT = "supervise/stat"
STAT_NEW = "supervise/stat.new"
PID = "supervise/pid"
PID_NEW = "supervise/pid.new"
CONTROL = "supervise/control"
OK = "supervise/ok"
LOCK = "supervise/lock"
DOWN = "down"

DJB_SIZE = 18
RUNIT_SIZE = 20

STATE_DOWN = 0
STATE_RUN = 1
STATE_FINISH = 2

WANT_UP = ord("u")
WANT_DOWN = ord("d")
WANT_ONCE = 0

# Control bytes: daemontools' u d o p c h a i t k x and runit's q 1 2.
COMMANDS = b"udopchaitkxq12"


class Status:
    """One status record. A plain class: dataclasses imports inspect, which
    alone would double the start-up time of svstat."""

    __slots__ = ("seconds", "nanoseconds", "pid", "paused", "want", "term_sent", "state")

    def __init__(self, seconds: int = 0, nanoseconds: int = 0, pid: int = 0,
                 paused: bool = False, want: int = WANT_UP, term_sent: bool = False,
                 state: int = STATE_DOWN) -> None:
        self.seconds = seconds
        self.nanoseconds = nanoseconds
        self.pid = pid
        self.paused = paused
        self.want = want
        self.term_sent = term_sent
        self.state = state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Status(%s)" % ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)

    @property
    def since(self) -> float:
        return self.seconds + self.nanoseconds / 1e9


def pack(st: Status) -> bytes:
    return tai64.pack(st.seconds, st.nanoseconds) + st.pid.to_bytes(4, "little") + bytes(
        (1 if st.paused else 0, st.want, 1 if st.term_sent else 0, st.state))


def unpack(data: bytes) -> Status | None:
    """A status record of 18 (daemontools) or 20 (runit) bytes, else None.

    An 18-byte record has no state byte: the state follows from the pid.
    """
    if len(data) not in (DJB_SIZE, RUNIT_SIZE):
        return None
    seconds, nano = tai64.unpack(data)
    pid = int.from_bytes(data[12:16], "little")
    st = Status(seconds, nano, pid, data[16] != 0, data[17])
    if len(data) == RUNIT_SIZE:
        st.term_sent = data[18] != 0
        st.state = data[19]
    else:
        st.state = STATE_RUN if pid else STATE_DOWN
    return st


def read(directory: str | int | None = None) -> Status | None:
    """Read DIR/supervise/status; None if it is not a status record.

    Raises OSError when the file cannot be read.
    """
    with open(_path(directory, STATUS), "rb") as f:
        return unpack(f.read(RUNIT_SIZE + 1))


def _path(directory: str | int | None, name: str) -> str:
    if directory is None:
        return name
    if isinstance(directory, int):
        return f"/proc/self/fd/{directory}/{name}"
    return os.path.join(directory, name)


def replace(name: str, new: str, data: bytes) -> None:
    """Write data to new, then rename it over name: readers never see half."""
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(new, name)


def stat_text(st: Status) -> bytes:
    """runit's supervise/stat line."""
    text = (b"down", b"run", b"finish")[st.state] if st.state <= 2 else b"down"
    if st.paused:
        text += b", paused"
    if st.term_sent:
        text += b", got TERM"
    if st.state != STATE_DOWN and st.want == WANT_DOWN:
        text += b", want down"
    return text + b"\n"


def pid_text(st: Status) -> bytes:
    """runit's supervise/pid: the pid and a newline, empty when down."""
    return b"%d\n" % st.pid if st.pid else b""


def supervise_running(directory: str | None = None) -> bool:
    """True iff a supervisor holds supervise/ok open for reading.

    Opening a FIFO for writing without blocking fails with ENXIO when nobody
    reads it: that is daemontools' whole liveness protocol.
    """
    try:
        fd = os.open(_path(directory, OK), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)
    return True


def send(directory: str, commands: bytes) -> None:
    """Write control bytes into DIR/supervise/control, as svc does.

    Raises OSError; ENXIO means no supervise reads the FIFO.
    """
    fd = os.open(_path(directory, CONTROL), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, commands)
    finally:
        os.close(fd)


def lock_owner(directory: str) -> int | None:
    """The pid holding DIR/supervise/lock, from /proc/locks, or None.

    flock() records the pid that took the lock; a supervise takes its own,
    so this names the worker without asking it anything.
    """
    try:
        st = os.stat(os.path.join(directory, LOCK))
    except OSError:
        return None
    key = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a
                # waiter's line has "->" after the number
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
                    return int(fields[4])
    except OSError:
        return None
    return None
