"""The optional files of a service directory that tune the worker.

Most come from s6's service directories and mean what they mean there;
``kill-group`` and ``restart-backoff`` are dtd's. The worker reads each one
when it needs it (a start, an exit, a down command), as s6-supervise does,
so a change takes effect at the next such event without a restart.
A missing file means the daemontools behaviour.

    finish           run after ./run exits (runit, s6)
    timeout-finish   milliseconds before ./finish is killed; 0 = no limit (s6)
    down-signal      the signal d sends instead of SIGTERM (s6)
    timeout-kill     milliseconds after d before SIGKILL; 0 = never (s6)
    nosetsid         ./run is not made a session leader (s6)
    kill-group       the down signal, the timeout-kill SIGKILL and k go to
                     ./run's whole process group (dtd)
    notification-fd  the descriptor on which ./run writes a newline when
                     ready (s6)
    restart-backoff  "MIN MAX": milliseconds of exponential backoff between
                     the restarts of a failing service (dtd)
"""

import os
import signal

FINISH = "finish"
TIMEOUT_FINISH = "timeout-finish"
DOWN_SIGNAL = "down-signal"
TIMEOUT_KILL = "timeout-kill"
NOSETSID = "nosetsid"
KILL_GROUP = "kill-group"
NOTIFICATION_FD = "notification-fd"
RESTART_BACKOFF = "restart-backoff"

TIMEOUT_FINISH_DEFAULT = 5000  # ms, as s6
MAX_TEXT = 256


def exists(name: str) -> bool:
    # access() answers with a bool: no exception object for the usual answer
    return os.access(name, os.F_OK)


def read(name: str) -> str | None:
    """The first line of a small text file, stripped; None if it is missing.

    Raises OSError when the file is there but cannot be read.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, MAX_TEXT)
    finally:
        os.close(fd)
    return data.decode("ascii", "replace").partition("\n")[0].strip()


def parse_millis(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def parse_signal(text: str) -> int:
    """A signal as s6's down-signal has it: SIGHUP, HUP or a number."""
    if text.isdigit():
        value = int(text)
        if value not in signal.valid_signals():
            raise ValueError(text)
        return value
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(text) from None


def parse_fd(text: str) -> int:
    """notification-fd: 0, 1 and 2 are the service's stdio, not a channel."""
    value = int(text)
    if value < 3 or value > 1023:
        raise ValueError(text)
    return value


def parse_backoff(text: str) -> tuple[float, float]:
    """restart-backoff "MIN MAX" in milliseconds, as seconds; MIN <= MAX."""
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(text)
    low, high = (int(f) for f in fields)
    if low <= 0 or high < low:
        raise ValueError(text)
    return low / 1000, high / 1000
