"""setuidgid against Debian's /usr/bin/setuidgid, to a real unprivileged
account made for the run: the ids and groups the child gets, usage, errors."""

import pwd
from pathlib import Path

import pytest

from clienttools import SETPRIV, can_lose_dac
from conftest import have_ref, ours, ref
from tooltools import compare, run, runnable_by, testuser  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not have_ref("setuidgid"), reason="daemontools not installed")

IDS = ["sh", "-c", "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status"]


def test_ids_and_groups(tmp: Path, testuser: pwd.struct_passwd) -> None:
    got = compare("setuidgid", [testuser.pw_name, *IDS], cwd=tmp)
    uid, gid = str(testuser.pw_uid), str(testuser.pw_gid)
    # the supplementary groups are exactly the primary group, as setgroups(1, &gid) leaves them
    assert got[1].decode().split("\n")[:3] == [uid, gid, gid]
    assert f"Groups:\t{gid} \n".encode() in got[1]


@pytest.mark.parametrize("args", [
    [], ["x"], ["nosuchaccount", "true"], ["", "true"], ["USER"], ["USER", "nosuchprogram"],
    ["USER", "sh", "-c", "exit 5"], ["root", "true"], ["0", "true"],
])
def test_arguments_and_errors(tmp: Path, testuser: pwd.struct_passwd, args: list[str]) -> None:
    compare("setuidgid", [testuser.pw_name if a == "USER" else a for a in args], cwd=tmp)


def test_unknown_account_message(tmp: Path) -> None:
    got = compare("setuidgid", ["nosuchaccount", "true"], cwd=tmp)
    assert got == (111, b"", b"setuidgid: fatal: unknown account nosuchaccount\n")


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
@pytest.mark.parametrize("cap,what", [("setgid", "setgid"), ("setuid", "setuid")])
def test_without_the_capability(tmp: Path, testuser: pwd.struct_passwd, cap: str, what: str) -> None:
    """root without CAP_SETGID cannot setgroups/setgid; without CAP_SETUID,
    cannot setuid."""
    got = compare("setuidgid", [testuser.pw_name, "true"], cwd=tmp,
                  wrap=[SETPRIV, "--bounding-set", f"-{cap}"])
    assert got == (111, b"", f"setuidgid: fatal: unable to {what}: permission denied\n".encode())


def test_unprivileged_caller_cannot_switch(tmp: Path, testuser: pwd.struct_passwd) -> None:
    if not runnable_by(testuser.pw_uid, testuser.pw_gid):
        pytest.skip("our interpreter is not readable by an unprivileged user here")
    want = run([ref("setuidgid"), testuser.pw_name, ref("setuidgid"), "root", "true"], cwd=tmp)
    got = run([ref("setuidgid"), testuser.pw_name, ours("setuidgid"), "root", "true"], cwd=tmp)
    assert got == want == (111, b"", b"setuidgid: fatal: unable to setgid: permission denied\n")
