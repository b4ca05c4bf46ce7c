"""dtd/relay.py on real pipes, in-process: whole lines only, an unfinished
line left in its pipe, a line longer than the pipe written in pieces while
the others wait, the split of a long line whose writer pauses, flushing."""

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dtd.relay import Relay, Stream, label


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "out"
        self.out = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.relay = Relay(self.out, lambda delay, fn: self.timers.append((delay, fn)))
        self.pipes: list[tuple[int, int]] = []

    def pipe(self, name: str) -> tuple[Stream, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self.pipes.append((r, w))
        return self.relay.add(name, r, w), w

    def output(self) -> bytes:
        return self.path.read_bytes()

    def close(self) -> None:
        self.relay.close()
        for r, w in self.pipes:
            os.close(r)
            os.close(w)
        os.close(self.out)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.close()


@pytest.fixture(params=["tee", "read"])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """With tee(2), and as where a seccomp filter refuses it."""
    s = Setup(tmp_path)
    s.relay.tee = request.param == "tee"
    yield s
    s.close()


def fill(w: int) -> int:
    """Write x into the pipe until it is full; how many."""
    os.set_blocking(w, False)
    n = 0
    try:
        while True:
            n += os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    return n


def test_only_whole_lines_leave_the_pipe(both: Setup) -> None:
    a, wa = both.pipe("a")
    os.write(wa, b"one\ntw")
    both.relay.on_events()
    assert both.output() == b"a: one\n"
    assert both.relay.peek(a) == b"tw"  # the unfinished line waits (in the pipe, with tee)
    os.write(wa, b"o\nthree\n")
    both.relay.on_events()
    assert both.output() == b"a: one\na: two\na: three\n"
    assert both.relay.peek(a) == b""


def test_two_pipes_interleave_by_line(both: Setup) -> None:
    a, wa = both.pipe("a")
    b, wb = both.pipe("b")
    os.write(wa, b"a1\na2")
    os.write(wb, b"b1\n")
    both.relay.on_events()
    os.write(wa, b"\n")
    os.write(wb, b"b2\n")
    both.relay.on_events()
    lines = both.output().split(b"\n")
    assert sorted(lines) == sorted([b"a: a1", b"a: a2", b"b: b1", b"b: b2", b""])
    assert lines.index(b"a: a1") < lines.index(b"a: a2")
    assert lines.index(b"b: b1") < lines.index(b"b: b2")


def test_a_line_longer_than_the_pipe_holds_the_others(setup: Setup) -> None:
    a, wa = setup.pipe("a")
    b, wb = setup.pipe("b")
    n = fill(wa)
    os.write(wb, b"waiting\n")
    setup.relay.on_events()
    # the full pipe's line went out unfinished; b waits for its end
    assert setup.output() == b"a: " + b"x" * n
    n += fill(wa)
    setup.relay.on_events()
    assert setup.output() == b"a: " + b"x" * n
    os.write(wa, b"end\nnext\n")
    setup.relay.on_events()
    assert setup.output() == b"a: " + b"x" * n + b"end\na: next\nb: waiting\n"


def test_a_long_line_whose_writer_pauses_is_split(setup: Setup) -> None:
    a, wa = setup.pipe("a")
    b, wb = setup.pipe("b")
    n = fill(wa)
    setup.relay.on_events()
    os.write(wb, b"waiting\n")
    setup.relay.on_events()
    assert setup.output() == b"a: " + b"x" * n
    assert setup.timers and all(delay == 1.0 for delay, _ in setup.timers)
    for _, fn in setup.timers:
        fn()
    assert setup.output() == b"a: " + b"x" * n + b"\nb: waiting\n"
    os.write(wa, b"rest\n")
    setup.relay.on_events()
    assert setup.output().endswith(b"\nb: waiting\na: rest\n")


def test_a_timer_of_a_line_that_moved_on_does_nothing(setup: Setup) -> None:
    a, wa = setup.pipe("a")
    n = fill(wa)
    setup.relay.on_events()
    first = list(setup.timers)
    n += fill(wa)
    setup.relay.on_events()
    for _, fn in first:
        fn()  # the line moved since: not split
    assert setup.output() == b"a: " + b"x" * n


def test_flush_writes_an_unfinished_last_line_with_a_newline(both: Setup) -> None:
    a, wa = both.pipe("a")
    os.write(wa, b"done\nlast words")
    both.relay.on_events()
    both.relay.flush(a)
    assert both.output() == b"a: done\na: last words\n"
    assert both.relay.peek(a) == b""


def test_remove_flushes_and_forgets(both: Setup) -> None:
    a, wa = both.pipe("a")
    os.write(wa, b"bye")
    both.relay.remove(a)
    assert both.output() == b"a: bye\n"
    os.write(wa, b"unseen\n")
    both.relay.on_events()
    assert both.output() == b"a: bye\n"


def test_rename_changes_the_prefix(both: Setup) -> None:
    a, wa = both.pipe("old")
    both.relay.rename(a, "new")
    os.write(wa, b"x\n")
    both.relay.on_events()
    assert both.output() == b"new: x\n"


def test_label() -> None:
    assert label("web") == b"web: "
    assert label("a\nb") == b"a\\nb: "
    assert label(os.fsdecode(b"raw\xff")) == b"raw\xff: "


def test_a_refused_tee_falls_back_to_reading(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import errno

    import dtd.peek

    # (a seccomp filter that refuses tee cannot be set up here)
    def refused(*args: object) -> int:
        ctypes.set_errno(errno.EPERM)
        return -1
    monkeypatch.setattr(dtd.peek, "_tee", refused)
    a, wa = setup.pipe("a")
    os.write(wa, b"one\ntwo")
    setup.relay.on_events()
    assert not setup.relay.tee
    assert setup.output() == b"a: one\n"
    setup.relay.flush(a)
    assert setup.output() == b"a: one\na: two\n"


def test_a_line_past_the_limit_is_split_so_others_get_a_turn(setup: Setup) -> None:
    setup.relay.max_line = 1000
    a, wa = setup.pipe("a")
    b, wb = setup.pipe("b")
    n = fill(wa)
    setup.relay.on_events()
    # a line of a full pipe, past the limit: ended there, not holding the output
    assert setup.output() == b"a: " + b"x" * n + b"\n"
    os.write(wb, b"waiting\n")
    setup.relay.on_events()
    os.write(wa, b"rest\n")
    setup.relay.on_events()
    assert setup.output() == b"a: " + b"x" * n + b"\nb: waiting\na: rest\n"
