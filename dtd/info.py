"""supervise/info: what the worker knows beyond the 20-byte status record.

One ``key=value`` line per field, every field always written, in this order:

    ready=0|1                ./run said it is ready since its current start
    ready_since=S.NNNNNNNNN  Unix time it became ready, 0 when not ready
    status_text=TEXT         the last STATUS= on NOTIFY_SOCKET since the current
                             start, one line
    exit=N                   how the last ./run ended: 0..255, -1 for a
                             signal, empty if none ended since the worker began
    signal=N                 the signal number when exit=-1, else 0
    fails=N                  consecutive failed runs (what the backoff counts)
    backoff=S.NNN            the delay before the held-back next start, else 0
    stopped=0|1              stopped for good: ./finish said 125, or down and
                             wanted down or once after having run

Readers ignore keys they do not know and keep the defaults for missing
ones, so the format can grow. The file is missing under daemontools' and
runit's supervisors: ``read`` then returns None. A plain class, like
status.Status: dataclasses would import inspect into every client.
"""

import os

INFO = "supervise/info"
INFO_NEW = "supervise/info.new"

class Info:
    __slots__ = ("ready", "ready_since", "status_text", "exit_code", "exit_signal",
                 "fails", "backoff", "stopped")

    def __init__(self, ready: bool = False, ready_since: float = 0.0,
                 status_text: str = "", exit_code: int | None = None,
                 exit_signal: int = 0, fails: int = 0, backoff: float = 0.0,
                 stopped: bool = False) -> None:
        self.ready = ready
        self.ready_since = ready_since
        self.status_text = status_text
        self.exit_code = exit_code
        self.exit_signal = exit_signal
        self.fails = fails
        self.backoff = backoff
        self.stopped = stopped

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Info) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Info(%s)" % ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def pack(info: Info) -> bytes:
    code = "" if info.exit_code is None else str(info.exit_code)
    text = (
        f"ready={1 if info.ready else 0}\n"
        f"ready_since={info.ready_since:.9f}\n"
        f"status_text={_one_line(info.status_text)}\n"
        f"exit={code}\n"
        f"signal={info.exit_signal}\n"
        f"fails={info.fails}\n"
        f"backoff={info.backoff:.3f}\n"
        f"stopped={1 if info.stopped else 0}\n"
    )
    return text.encode("utf-8", "surrogateescape")


def unpack(data: bytes) -> Info:
    """Parse the lines; a key that is unknown or a value that does not parse
    is skipped, so an older reader keeps what it understands."""
    info = Info()
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            if key == "ready":
                info.ready = value.strip() == "1"
            elif key == "ready_since":
                info.ready_since = float(value)
            elif key == "status_text":
                info.status_text = value
            elif key == "exit":
                info.exit_code = int(value) if value.strip() else None
            elif key == "signal":
                info.exit_signal = int(value)
            elif key == "fails":
                info.fails = int(value)
            elif key == "backoff":
                info.backoff = float(value)
            elif key == "stopped":
                info.stopped = value.strip() == "1"
        except ValueError:
            continue
    return info


def read(path: str = INFO) -> Info | None:
    """The info file at path (relative paths from the service directory's
    point of view: ``DIR/supervise/info``); None when there is none.

    Raises OSError for other failures than a missing file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except FileNotFoundError:
        return None
    return unpack(data)


def write(info: Info, path: str = INFO, new: str = INFO_NEW) -> None:
    """Write info to new, then rename it over path: readers never see half."""
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(pack(info))
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(new, path)
