"""restart-backoff: capped exponential delays between the restarts of a
failing service, the fails and backoff fields of supervise/info, and svc -d
and -u while a start is held back."""

import itertools
import time
from pathlib import Path

from conftest import Procs, make_service, wait_for
from test_supervise import control, read_status, start

from dtd import info

FAILING = 'echo "start $(date +%s.%N)" >> starts\nexit 1'


def start_times(d: Path) -> list[float]:
    try:
        return [float(line.split()[1]) for line in (d / "starts").read_text().splitlines()]
    except FileNotFoundError:
        return []


def read_info(d: Path) -> info.Info:
    got = info.read(str(d / info.INFO))
    return got if got is not None else info.Info()


def test_delays_double_up_to_the_cap(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", FAILING)
    (d / "restart-backoff").write_text("1500 2500\n")
    start(procs, d)
    wait_for(lambda: read_info(d).fails == 1, what="first failure")
    assert read_info(d).backoff == 1.5
    wait_for(lambda: read_info(d).fails == 2, timeout=5, what="second failure")
    assert read_info(d).backoff == 2.5  # 3.0, capped
    wait_for(lambda: len(start_times(d)) == 3, timeout=6, what="third start")
    t = start_times(d)
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert 1.45 <= gaps[0] < 2.2 and 2.45 <= gaps[1] < 3.2, gaps
    # the count goes on while the runs keep failing; the delay stays capped
    wait_for(lambda: read_info(d).fails == 3, what="third failure")
    assert read_info(d).backoff == 2.5


def test_down_during_a_backoff_cancels_the_start(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", FAILING)
    (d / "restart-backoff").write_text("2000 8000")
    start(procs, d)
    wait_for(lambda: read_info(d).backoff == 2.0, what="a start held back")
    t0 = time.monotonic()
    control(d, b"d")
    wait_for(lambda: read_info(d).backoff == 0 and read_info(d).stopped, timeout=1,
             what="backoff cancelled")
    assert time.monotonic() - t0 < 0.5
    time.sleep(2.2)
    assert len(start_times(d)) == 1 and read_status(d).want == ord("d")


def test_up_during_a_backoff_starts_now(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", FAILING)
    (d / "restart-backoff").write_text("5000 10000")
    start(procs, d)
    wait_for(lambda: read_info(d).backoff == 5.0, what="a start held back")
    control(d, b"u")
    # the one-second rule still holds, the backoff does not
    wait_for(lambda: len(start_times(d)) == 2, timeout=2.5, what="start on svc -u")
    t = start_times(d)
    assert 0.95 <= t[1] - t[0] < 2.5
    assert read_info(d).fails >= 1


def test_a_good_run_resets_the_count(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", 'echo "start $(date +%s.%N)" >> starts\n'
                     "[ -e fail ] && exit 1\nsleep 0.4\nexit 0")
    (d / "restart-backoff").write_text("100 300")
    (d / "fail").touch()
    start(procs, d)
    wait_for(lambda: read_info(d).fails >= 2, timeout=5, what="failures")
    (d / "fail").unlink()
    # a run that lasts longer than MAX and exits 0 is a success
    wait_for(lambda: read_info(d).fails == 0, timeout=5, what="count reset")
    assert read_info(d).exit_code == 0


def test_without_the_file_fails_count_and_nothing_is_held(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", FAILING)
    start(procs, d)
    wait_for(lambda: read_info(d).fails >= 2, timeout=5, what="failures counted")
    inf = read_info(d)
    assert inf.backoff == 0 and inf.exit_code == 1
    t = start_times(d)
    assert 0.95 <= t[1] - t[0] < 1.5


def test_bad_file_is_warned_of_and_ignored(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", FAILING)
    (d / "restart-backoff").write_text("fast please")
    p = start(procs, d)
    wait_for(lambda: len(start_times(d)) >= 2, timeout=5)
    control(d, b"dx")
    assert p.wait(timeout=5) == 0
    assert p.stderr is not None
    assert b"supervise: warning: invalid " in p.stderr.read()
