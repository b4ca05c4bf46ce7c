"""The services as the APIs show them: one record per supervised directory.

Pure: the root reads the status files and feeds them in; the model keeps
the last record of each service, tells listeners what changed, and counts
the starts it has seen. The socket API and the D-Bus service are listeners
and readers of this, nothing more.
"""

from typing import Callable

from dtd.info import Info
from dtd.status import STATE_FINISH, STATE_RUN, WANT_DOWN, WANT_UP, Status

ADDED = "added"
CHANGED = "changed"
REMOVED = "removed"

STATES = {STATE_RUN: "up", STATE_FINISH: "finish"}
WANTS = {WANT_UP: "up", WANT_DOWN: "down"}

# the control verbs, as svc's options and the D-Bus methods name them
VERBS = {
    "up": b"u", "down": b"d", "once": b"o", "pause": b"p", "cont": b"c",
    "hup": b"h", "alarm": b"a", "int": b"i", "term": b"t", "kill": b"k", "exit": b"x",
}


class Service:
    __slots__ = ("name", "directory", "state", "pid", "since", "paused", "want",
                 "normally_up", "supervised", "starts", "ready", "ready_since",
                 "status_text", "exit_code", "exit_signal", "fails", "backoff", "stopped")

    def __init__(self, name: str, directory: str) -> None:
        self.name = name  # "web", or "web/log" for its logger
        self.directory = directory  # absolute
        self.state = "down"  # up, down, finish
        self.pid = 0
        self.since = 0.0  # Unix time of the last pid change
        self.paused = False
        self.want = "up"  # up, down, once
        self.normally_up = True
        self.supervised = False  # a worker holds the directory
        self.starts = 0  # ./run starts seen since the root began watching
        # from supervise/info (dtd/info.py); these defaults when it is missing
        self.ready = False
        self.ready_since = 0.0  # Unix time
        self.status_text = ""
        self.exit_code: int | None = None  # of the last run; -1 for a signal
        self.exit_signal = 0
        self.fails = 0
        self.backoff = 0.0  # seconds
        self.stopped = False

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}

    def same(self, other: "Service") -> bool:
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


Listener = Callable[[str, Service], None]


class Model:
    def __init__(self, scan_directory: str) -> None:
        self.scan_directory = scan_directory
        self.services: dict[str, Service] = {}
        self.listeners: list[Listener] = []

    def listen(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def unlisten(self, fn: Listener) -> None:
        if fn in self.listeners:
            self.listeners.remove(fn)

    def emit(self, kind: str, svc: Service) -> None:
        for fn in list(self.listeners):
            fn(kind, svc)

    def get(self, name: str) -> Service | None:
        return self.services.get(name)

    def all(self) -> list[Service]:
        return [self.services[k] for k in sorted(self.services)]

    def update(self, name: str, directory: str, st: Status | None, normally_up: bool,
               supervised: bool, info: Info | None = None) -> None:
        """Record what the files say of one service (supervise/status and,
        when the worker writes one, supervise/info); tell listeners if that
        is new or different."""
        old = self.services.get(name)
        new = Service(name, directory)
        new.normally_up = normally_up
        new.supervised = supervised
        new.starts = old.starts if old else 0
        if st is not None:
            new.state = STATES.get(st.state, "down") if st.pid or st.state else "down"
            new.pid = st.pid
            new.since = st.since
            new.paused = st.paused and bool(st.pid)
            new.want = WANTS.get(st.want, "once")
            if st.pid and (old is None or old.pid != st.pid) and old is not None:
                new.starts += 1
        if info is not None:
            # readiness belongs to a run: the worker renames the status
            # record (down) into place just before the info that says so
            if info.ready and new.state == "up":
                new.ready = True
                new.ready_since = info.ready_since
            new.status_text = info.status_text
            new.exit_code = info.exit_code
            new.exit_signal = info.exit_signal
            new.fails = info.fails
            new.backoff = info.backoff
            new.stopped = info.stopped
        if old is None:
            if new.pid:
                new.starts = 1
            self.services[name] = new
            self.emit(ADDED, new)
        elif not new.same(old):
            self.services[name] = new
            self.emit(CHANGED, new)

    def remove(self, name: str) -> None:
        svc = self.services.pop(name, None)
        if svc is not None:
            self.emit(REMOVED, svc)
