"""The model: records from status files, change events, start counts."""

from dtd.info import Info
from dtd.model import ADDED, CHANGED, REMOVED, Model
from dtd.status import STATE_DOWN, STATE_RUN, WANT_DOWN, WANT_ONCE, WANT_UP, Status


def run(pid: int, t: int = 100, want: int = WANT_UP, paused: bool = False) -> Status:
    return Status(t, 5, pid, paused, want, False, STATE_RUN if pid else STATE_DOWN)


def test_events_and_fields() -> None:
    m = Model("/s")
    seen: list[tuple[str, str, int]] = []
    m.listen(lambda kind, svc: seen.append((kind, svc.state, svc.pid)))
    m.update("web", "/s/web", run(10), True, True)
    m.update("web", "/s/web", run(10), True, True)  # nothing new: no event
    m.update("web", "/s/web", run(0, 101, WANT_DOWN), True, True)
    m.remove("web")
    assert seen == [(ADDED, "up", 10), (CHANGED, "down", 0), (REMOVED, "down", 0)]


def test_record_fields() -> None:
    m = Model("/s")
    m.update("db/log", "/s/db/log", run(7, 200, WANT_ONCE, paused=True), False, True)
    svc = m.get("db/log")
    assert svc is not None
    assert svc.as_dict() == {
        "name": "db/log", "directory": "/s/db/log", "state": "up", "pid": 7,
        "since": 200 + 5e-9, "paused": True, "want": "once", "normally_up": False,
        "supervised": True, "starts": 1, "ready": False, "ready_since": 0.0,
        "status_text": "", "exit_code": None, "exit_signal": 0, "fails": 0,
        "backoff": 0.0, "stopped": False}


def test_starts_count_new_pids() -> None:
    m = Model("/s")
    m.update("a", "/s/a", run(0), True, True)
    assert m.get("a").starts == 0  # type: ignore[union-attr]
    for pid in (11, 0, 12, 13):
        m.update("a", "/s/a", run(pid), True, True)
    assert m.get("a").starts == 3  # type: ignore[union-attr]


def test_no_status_yet_is_down() -> None:
    m = Model("/s")
    m.update("x", "/s/x", None, True, False)
    svc = m.get("x")
    assert svc is not None and svc.state == "down" and not svc.supervised
    assert [s.name for s in m.all()] == ["x"]


def test_info_fields_and_their_changes() -> None:
    m = Model("/s")
    seen: list[tuple[str, bool, str]] = []
    m.listen(lambda kind, svc: seen.append((kind, svc.ready, svc.status_text)))
    m.update("w", "/s/w", run(9), True, True)  # no info file: the defaults
    inf = Info(True, 300.5, "serving", -1, 9, 3, 0.25, True)
    m.update("w", "/s/w", run(9), True, True, inf)
    svc = m.get("w")
    assert svc is not None
    assert (svc.ready, svc.ready_since, svc.status_text, svc.exit_code, svc.exit_signal,
            svc.fails, svc.backoff, svc.stopped) == (True, 300.5, "serving", -1, 9, 3, 0.25, True)
    m.update("w", "/s/w", run(9), True, True, inf)  # the same again: no event
    m.update("w", "/s/w", run(9), True, True, Info(True, 300.5, "busy"))
    assert seen == [(ADDED, False, ""), (CHANGED, True, "serving"), (CHANGED, True, "busy")]


def test_a_service_that_is_not_up_is_not_ready() -> None:
    m = Model("/x")
    seen: list[tuple[str, bool]] = []
    m.listen(lambda kind, svc: seen.append((svc.state, svc.ready)))
    ready = Info(ready=True, ready_since=5.0)
    m.update("a", "/x/a", Status(10, 0, 123, state=STATE_RUN), True, True, ready)
    # the status record says down before the info file says not ready
    m.update("a", "/x/a", Status(11, 0, 0), True, True, ready)
    m.update("a", "/x/a", Status(11, 0, 0), True, True, Info())
    assert seen == [("up", True), ("down", False)]
    assert m.get("a") is not None and m.get("a").ready_since == 0.0  # type: ignore[union-attr]
