"""The process trees a benchmark starts: finding them, measuring them
(PSS, CPU time, context switches, all from /proc), and ending them.

The bench makes itself a child subreaper, so every process a supervisor
leaves behind (a service whose supervisor was killed, a worker that outlives
its root) is re-parented to the bench rather than to init: then "everything
below the bench" is exactly what a benchmark started, and ending it is a
matter of killing that set by pid until it is empty.
"""

import ctypes
import errno
import os
import signal
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold
    spaces and parentheses), so field 0 is the state, 1 the ppid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """Every process below root, parents before children."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    order: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo.extend(children.get(pid, []))
    return order


def tree(root: int, stop: set[int]) -> list[int]:
    """root and the processes below it, leaving out each process in stop
    and everything below that one (the services under their supervisors)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    order: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop(0)
        if pid in stop or is_zombie(pid):
            continue
        order.append(pid)
        todo.extend(children.get(pid, []))
    return order


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def reap() -> None:
    """Collect every exited child of the bench, including orphans it
    inherited as a subreaper."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all_below(root: int | None = None, timeout: float = 10.0) -> None:
    """SIGKILL everything below root (the bench by default), parents first
    so that no supervisor lives long enough to restart what dies under it;
    repeat until nothing is left, reaping as we go."""
    root = os.getpid() if root is None else root
    deadline = time.monotonic() + timeout
    while True:
        live = [p for p in descendants(root) if not is_zombie(p)]
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap()
        if not live and not descendants(root):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes below {root} survive SIGKILL: {live}")
        time.sleep(0.005)


def pss_kib(pid: int) -> int:
    """Proportional set size: private pages plus a fair share of shared
    ones, so summing it over processes does not count shared pages twice."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise ValueError(f"no Pss in /proc/{pid}/smaps_rollup")


def cpu_ns(pid: int) -> int:
    """CPU time of all threads of pid in nanoseconds. schedstat counts
    nanoseconds, where /proc/PID/stat's utime+stime count 10 ms ticks,
    too coarse for the few milliseconds an idle supervisor uses."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            if fields is None:
                raise ProcessLookupError(errno.ESRCH, f"no process {pid}") from None
            ticks = int(fields[11]) + int(fields[12])
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return total


def context_switches(pid: int) -> int:
    """Voluntary plus involuntary switches: each time a blocked process is
    woken up and scheduled counts at least once."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
    return total
