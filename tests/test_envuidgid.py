"""envuidgid against Debian's /usr/bin/envuidgid, with a real account made
for the run: $UID and $GID, their place in the environment, usage, errors."""

import pwd
from pathlib import Path

import pytest

from conftest import have_ref
from tooltools import ENV, compare, testuser  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not have_ref("envuidgid"), reason="daemontools not installed")


def test_sets_uid_and_gid(tmp: Path, testuser: pwd.struct_passwd) -> None:
    got = compare("envuidgid", [testuser.pw_name, "env"], cwd=tmp)
    tail = f"GID={testuser.pw_gid}\nUID={testuser.pw_uid}\n".encode()
    assert got[0] == 0 and got[1].endswith(tail)


def test_replaces_existing_values(tmp: Path, testuser: pwd.struct_passwd) -> None:
    # an old UID's slot goes to the last variable: the order shows it
    env = dict(ENV, UID="7", A="a", GID="8", B="b")
    compare("envuidgid", [testuser.pw_name, "env"], cwd=tmp, env=env)


def test_ids_stay_those_of_the_caller(tmp: Path, testuser: pwd.struct_passwd) -> None:
    got = compare("envuidgid", [testuser.pw_name, "id", "-u"], cwd=tmp)
    assert got == (0, b"0\n", b"")


@pytest.mark.parametrize("args", [
    [], ["x"], ["nosuchaccount", "true"], ["", "env"], ["root", "nosuchprogram"],
    ["root", "sh", "-c", "exit 5"], ["nobody", "sh", "-c", "echo $UID $GID"],
])
def test_arguments_and_errors(tmp: Path, args: list[str]) -> None:
    compare("envuidgid", args, cwd=tmp)
