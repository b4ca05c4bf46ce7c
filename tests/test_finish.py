"""supervise's ./finish: its arguments, the finish state in the status files,
timeout-finish, exit 125, and d or x while it runs."""

import os
import re
import subprocess
import time
from pathlib import Path

from conftest import Procs, have_ref, make_service, ours, pid_alive, ref, wait_for
from test_supervise import control, read_status, start, up_pid

from dtd import info, status

# finish records its arguments and pid, then waits for the test's go-ahead
FINISH = """#!/bin/sh
echo "$@" >> finish.args
echo $$ > finish.pid
while [ ! -e go ]; do sleep 0.01; done
rm -f go
exit ${FINISH_CODE:-0}
"""


def with_finish(d: Path, script: str = FINISH) -> Path:
    (d / "finish").write_text(script)
    (d / "finish").chmod(0o755)
    return d


def args_seen(d: Path) -> list[str]:
    try:
        return (d / "finish.args").read_text().splitlines()
    except FileNotFoundError:
        return []


def finish_pid(d: Path) -> int:
    try:
        return int((d / "finish.pid").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def starts(d: Path) -> int:
    try:
        return (d / "starts").read_text().count("start")
    except FileNotFoundError:
        return 0


def in_finish(d: Path) -> bool:
    st = status.read(str(d))
    return st is not None and st.state == status.STATE_FINISH


def read_info(d: Path) -> info.Info:
    got = info.read(str(d / info.INFO))
    assert got is not None
    return got


def test_finish_gets_exit_code_and_the_state_is_finish(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nsleep 0.2\nexit 3"))
    start(procs, d)
    wait_for(lambda: args_seen(d) == ["3 0"], what="finish with exit code 3")
    wait_for(lambda: in_finish(d), what="state finish")
    raw = (d / "supervise" / "status").read_bytes()
    # pid 0 while finish runs, want up, state 2
    assert raw[12:16] == b"\0\0\0\0" and raw[17:20] == b"u\0\2"
    assert (d / "supervise" / "stat").read_bytes() == b"finish\n"
    assert (d / "supervise" / "pid").read_bytes() == b""
    # info follows the status record
    wait_for(lambda: (read_info(d).exit_code, read_info(d).exit_signal) == (3, 0),
             what="exit=3 in info")
    assert not read_info(d).stopped
    # no restart while finish runs
    time.sleep(1.2)
    assert starts(d) == 1 and in_finish(d)
    (d / "go").touch()
    wait_for(lambda: starts(d) == 2, what="the restart after finish")


def test_finish_after_a_signal(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "exec sleep 1000"))
    start(procs, d)
    wait_for(lambda: up_pid(d))
    control(d, b"k")
    wait_for(lambda: args_seen(d) == ["-1 9"], what="finish with -1 and SIGKILL")
    wait_for(lambda: (read_info(d).exit_code, read_info(d).exit_signal) == (-1, 9),
             what="exit=-1 signal=9 in info")
    (d / "go").touch()
    wait_for(lambda: up_pid(d), what="restart")


def test_svstat_and_sv_during_finish(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "exit 0"))
    start(procs, d)
    wait_for(lambda: in_finish(d), what="state finish")
    mine = subprocess.run([ours("svstat"), str(d)], capture_output=True, check=False).stdout
    # the service is down while finish runs: daemontools' line says so
    assert re.fullmatch(rb"\S+: down \d+ seconds, normally up, want up\n", mine), mine
    if have_ref("svstat"):
        theirs = subprocess.run([ref("svstat"), str(d)], capture_output=True, check=False).stdout
        assert re.sub(rb"\d+ seconds", b"N", mine) == re.sub(rb"\d+ seconds", b"N", theirs)
    if have_ref("sv"):
        out = subprocess.run([ref("sv"), "status", str(d)], capture_output=True, check=False).stdout
        assert out.startswith(b"finish: "), out
    (d / "go").touch()


def test_finish_125_means_stay_down(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexit 1"))
    (d / "finish").write_text("#!/bin/sh\necho \"$@\" >> finish.args\nexit 125\n")
    start(procs, d)
    wait_for(lambda: args_seen(d) == ["1 0"])
    wait_for(lambda: read_info(d).stopped, what="stopped=1")
    st = read_status(d)
    assert st.pid == 0 and st.want == ord("d") and st.state == status.STATE_DOWN
    time.sleep(1.2)  # the one-second rule would have restarted it by now
    assert starts(d) == 1
    control(d, b"u")
    wait_for(lambda: starts(d) == 2, what="svc -u starts it again")


def test_timeout_finish_kills_a_slow_finish(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexit 0"))
    (d / "timeout-finish").write_text("300\n")
    start(procs, d)
    pid = wait_for(lambda: finish_pid(d), what="finish to run")
    t0 = time.monotonic()
    wait_for(lambda: not pid_alive(pid), timeout=5, what="finish killed")
    assert time.monotonic() - t0 < 2
    wait_for(lambda: starts(d) >= 2, what="restart after the killed finish")


def test_down_during_finish_means_no_restart(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexit 0"))
    start(procs, d)
    fpid = wait_for(lambda: finish_pid(d), what="finish to run")
    control(d, b"d")
    wait_for(lambda: read_status(d).want == ord("d"))
    # d does not signal finish
    assert pid_alive(fpid) and in_finish(d)
    # stat is written right after status
    wait_for(lambda: (d / "supervise" / "stat").read_bytes() == b"finish, want down\n")
    (d / "go").touch()
    wait_for(lambda: read_status(d).state == status.STATE_DOWN, what="down after finish")
    wait_for(lambda: read_info(d).stopped, what="stopped=1")
    time.sleep(1.2)
    assert starts(d) == 1


def test_exit_during_finish_waits_for_it(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "exit 0"))
    p = start(procs, d)
    wait_for(lambda: finish_pid(d), what="finish to run")
    control(d, b"dx")
    time.sleep(0.3)
    assert p.poll() is None  # still waiting for finish
    (d / "go").touch()
    assert p.wait(timeout=5) == 0


def test_up_during_finish_starts_after_it(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexec sleep 1000"))
    start(procs, d)
    # the run has written its line (its pid is in the status before its
    # shell has: a d at once killed it first once, in CI)
    wait_for(lambda: up_pid(d) and starts(d) == 1, what="the first start's line")
    control(d, b"d")
    wait_for(lambda: finish_pid(d), what="finish to run")
    control(d, b"u")
    time.sleep(0.2)
    assert starts(d) == 1 and in_finish(d)
    (d / "go").touch()
    wait_for(lambda: starts(d) == 2, what="start after finish")


def test_finish_keeps_the_one_second_rule(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexit 0"),
                    "#!/bin/sh\necho f >> finish.args\n")
    start(procs, d)
    wait_for(lambda: starts(d) >= 1)
    t0 = time.monotonic()
    wait_for(lambda: starts(d) >= 3, timeout=10)
    assert time.monotonic() - t0 >= 1.9
    assert len(args_seen(d)) >= 2


def test_unstartable_finish_is_warned_of_and_skipped(procs: Procs, swept: Path) -> None:
    d = with_finish(make_service(swept / "s", "echo start >> starts\nexit 0"))
    (d / "finish").chmod(0o644)
    p = start(procs, d)
    wait_for(lambda: starts(d) >= 2, what="restarts without finish")
    control(d, b"dx")
    assert p.wait(timeout=5) == 0
    assert p.stderr is not None
    err = p.stderr.read()
    assert f"supervise: warning: unable to start {d}/finish: access denied\n".encode() in err
    assert not os.path.exists(d / "finish.args")
