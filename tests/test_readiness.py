"""Readiness: s6's notification-fd and systemd's NOTIFY_SOCKET (with Debian's
real systemd-notify), as the worker writes them into supervise/info."""

import os
import re
import socket
import time
from pathlib import Path

import pytest
from conftest import Procs, make_service, ours, wait_for
from test_supervise import control, start, up_pid

from dtd import info

SYSTEMD_NOTIFY = "/usr/bin/systemd-notify"
needs_notify = pytest.mark.skipif(not os.path.exists(SYSTEMD_NOTIFY),
                                  reason="systemd-notify not installed")

WAIT_GO = "while [ ! -e go ]; do sleep 0.01; done\nrm -f go\n"


def read_info(d: Path) -> info.Info:
    got = info.read(str(d / info.INFO))
    return got if got is not None else info.Info()


def test_notification_fd(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", "echo start >> starts\n" + WAIT_GO
                     + "echo >&5\nexec 5>&-\nexec sleep 1000")
    (d / "notification-fd").write_text("5\n")
    start(procs, d)
    wait_for(lambda: (d / "starts").exists(), what="run to start")
    assert not read_info(d).ready
    (d / "go").touch()
    wait_for(lambda: read_info(d).ready, what="ready")
    assert abs(read_info(d).ready_since - time.time()) < 5
    # readiness belongs to a run: gone when it exits, back when the next says so
    control(d, b"k")
    wait_for(lambda: (d / "starts").read_text().count("start") == 2, what="restart")
    assert not read_info(d).ready and read_info(d).ready_since == 0
    (d / "go").touch()
    wait_for(lambda: read_info(d).ready, what="ready again")


def test_notification_fd_is_only_the_one_asked_for(procs: Procs, swept: Path) -> None:
    # no newline, just end of file: not ready; and without the file, no fd 5
    d = make_service(swept / "s", "ls /proc/$$/fd > fds\nexec 5>&-\nexec sleep 1000")
    (d / "notification-fd").write_text("5")
    start(procs, d)
    wait_for(lambda: (d / "fds").exists() and (d / "fds").read_text(), what="fds")
    assert "5" in (d / "fds").read_text().split()
    time.sleep(0.2)
    assert not read_info(d).ready
    (d / "notification-fd").unlink()
    control(d, b"k")
    wait_for(lambda: up_pid(d) and (d / "fds").read_text() and "5" not in (
        d / "fds").read_text().split(), what="a run without fd 5")


@needs_notify
def test_systemd_notify_ready_and_status(procs: Procs, swept: Path) -> None:
    # deep enough that a path-named socket would not fit in sun_path
    deep = swept.joinpath(*["a-rather-long-directory-name"] * 5)
    d = make_service(deep / "s", 'echo "$NOTIFY_SOCKET" > notify_socket\n' + WAIT_GO
                     + f"{SYSTEMD_NOTIFY} --status='warming up'\necho $? > rc\n" + WAIT_GO
                     + f"{SYSTEMD_NOTIFY} --ready --status='serving 3 clients'\n"
                     + "echo $? >> rc\nexec sleep 1000")
    assert len(str(d)) > 108
    start(procs, d)
    name = wait_for(lambda: (d / "notify_socket").exists()
                    and (d / "notify_socket").read_text().strip(), what="NOTIFY_SOCKET")
    # an abstract name: no path length limit
    assert re.fullmatch(r"@[0-9a-f]{5}", str(name))
    (d / "go").touch()
    wait_for(lambda: read_info(d).status_text == "warming up", what="STATUS=")
    assert not read_info(d).ready
    wait_for(lambda: not (d / "go").exists())
    (d / "go").touch()
    wait_for(lambda: read_info(d).ready, what="READY=1")
    inf = read_info(d)
    assert inf.status_text == "serving 3 clients" and abs(inf.ready_since - time.time()) < 5
    # systemd-notify waits for its barrier to be answered: it was, at once
    wait_for(lambda: (d / "rc").read_text().split() == ["0", "0"], what="systemd-notify's exit")
    # both belong to the run
    control(d, b"d")
    wait_for(lambda: not read_info(d).ready and read_info(d).status_text == "",
             what="cleared on exit")


@needs_notify
def test_notify_socket_ignores_outsiders(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", 'echo "$NOTIFY_SOCKET" > notify_socket\n' + WAIT_GO
                     + f"{SYSTEMD_NOTIFY} --status='from the service'\nexec sleep 1000")
    start(procs, d)
    name = str(wait_for(lambda: (d / "notify_socket").exists()
                        and (d / "notify_socket").read_text().strip()))
    # this test is not in the service's session
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1\nSTATUS=not from the service", "\0" + name[1:])
    # the service's word comes after ours: once it is heard, ours was dropped
    (d / "go").touch()
    wait_for(lambda: read_info(d).status_text == "from the service", what="STATUS=")
    assert not read_info(d).ready


def test_inherited_notify_socket_is_replaced(procs: Procs, swept: Path) -> None:
    d = make_service(swept / "s", 'echo "$NOTIFY_SOCKET" > notify_socket\nexec sleep 1000')
    procs.start([ours("supervise"), str(d)],
                env=dict(os.environ, NOTIFY_SOCKET="/run/systemd/notify"))
    text = wait_for(lambda: (d / "notify_socket").exists()
                    and (d / "notify_socket").read_text().strip())
    assert re.fullmatch(r"@[0-9a-f]{5}", str(text))


@needs_notify
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"),
                    reason="needs root and setpriv to drop to an unprivileged user")
def test_systemd_notify_unprivileged(procs: Procs, swept: Path) -> None:
    # without CAP_SYS_ADMIN systemd-notify cannot claim its parent's pid and
    # sends its own; it then waits on its barrier, so it is still there, in
    # the service's session, when the worker checks who sent READY=1
    d = make_service(swept / "s", "exec /usr/bin/setpriv --reuid=65534 --regid=65534 "
                     f"--clear-groups sh -c '{SYSTEMD_NOTIFY} --ready --status=unprivileged; "
                     "exec sleep 1000'")
    start(procs, d)
    wait_for(lambda: read_info(d).ready, what="READY=1 from an unprivileged sender")
    assert read_info(d).status_text == "unprivileged"
