"""What ``dtd --init`` (a container's init, or dtd as PID 1) needs beyond
the root: the processes left below it when it stops, and the exit code an
essential service hands on.

s6-overlay and tini do the same duties: reap what is reparented to them,
and make sure that nothing outlives them when the container stops.
"""

import os

from dtd.model import Service as Record

ESSENTIAL = "essential"  # the file that makes a service take the container down


def descendants(pid: int) -> list[int]:
    """Every live process below pid, from /proc: in a container, all of them.

    None when /proc belongs to another PID namespace (``unshare --pid
    --fork`` without ``--mount-proc``): its numbers are not ours to kill,
    and its process 1 is the host's init.
    """
    try:
        if int(os.readlink("/proc/self")) != os.getpid():
            return []
    except (OSError, ValueError):
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_all(pids: list[int], *signals: int) -> None:
    for pid in pids:
        for sig in signals:
            try:
                os.kill(pid, sig)
            except OSError:
                pass  # gone already


def is_essential(rec: Record) -> bool:
    """The service stopped for good and takes the container with it."""
    return rec.stopped and os.path.exists(os.path.join(rec.directory, ESSENTIAL))


def exit_code(rec: Record) -> int:
    """A stopped service's exit code as a shell reports it: 128 plus the
    signal that killed it; 0 when its worker does not know."""
    if rec.exit_code is None:
        return 0
    if rec.exit_code < 0:
        return 128 + rec.exit_signal
    return rec.exit_code
