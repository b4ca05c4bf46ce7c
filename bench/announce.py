"""Services that announce themselves: the first thing each ./run does is
write its name and pid into a FIFO the bench listens on, then it execs a
long sleep. The time a line arrives is the time the supervisor got ./run
going (plus one dash start-up, the same for every implementation), with no
polling of status files in between."""

import os
import select
import time
from pathlib import Path

SLEEP = 100000


class Announcements:
    """The FIFO and the lines read from it so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        # Read-write, so that the open never blocks and no EOF is ever seen
        # between two writers.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        self.buffer = b""
        self.pending: dict[str, list[tuple[float, int]]] = {}

    def close(self) -> None:
        os.close(self.fd)

    def script(self, name: str) -> str:
        return f'#!/bin/sh\necho "{name} $$" >{self.path}\nexec sleep {SLEEP}\n'

    def make_service(self, path: Path, down: bool = False) -> Path:
        """A service directory whose ./run announces itself as path.name."""
        path.mkdir(parents=True)
        run = path / "run"
        run.write_text(self.script(path.name))
        run.chmod(0o755)
        if down:
            (path / "down").touch()
        return path

    def _read(self, timeout: float) -> bool:
        """Wait up to timeout for input; file every complete line under its
        name, stamped with the time it was read."""
        if not self.poller.poll(max(0, int(timeout * 1000))):
            return False
        now = time.perf_counter()
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            name, pid = line.decode().rsplit(" ", 1)
            self.pending.setdefault(name, []).append((now, int(pid)))
        return True

    def poll(self, timeout: float) -> None:
        """Read whatever arrives within timeout (at most one wake-up)."""
        self._read(timeout)

    def take(self, name: str) -> tuple[float, int] | None:
        queue = self.pending.get(name)
        if not queue:
            return None
        item = queue.pop(0)
        if not queue:
            del self.pending[name]
        return item

    def wait(self, name: str, timeout: float = 10.0) -> tuple[float, int]:
        """(time, pid) of the next start of service name."""
        deadline = time.perf_counter() + timeout
        while True:
            item = self.take(name)
            if item is not None:
                return item
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{name}: ./run did not start within {timeout} s")
            self._read(left)

    def wait_all(self, names: set[str], timeout: float) -> dict[str, tuple[float, int]]:
        """The first start of each of names."""
        got: dict[str, tuple[float, int]] = {}
        deadline = time.perf_counter() + timeout
        while True:
            for name in names - got.keys():
                item = self.take(name)
                if item is not None:
                    got[name] = item
            if len(got) == len(names):
                return got
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{len(names) - len(got)} of {len(names)} services"
                                   f" did not start within {timeout} s")
            self._read(left)

    def drain(self) -> None:
        while self._read(0):
            pass
        self.pending.clear()
