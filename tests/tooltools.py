"""Running one of the small tools and the reference's on the same input, for
the tools' test modules (envdir, softlimit, tai64n, ...)."""

import os
import pwd
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from conftest import ours, ref

Result = tuple[int, bytes, bytes]
Arg = str | bytes | Path
# a small, fixed environment, so that "env" output compares byte for byte
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LC_ALL": "C", "X": "1", "Z": "2"}
# one account per test session: two sessions at once must not remove each
# other's
USER = f"dtdtest{os.getpid()}"


def run(argv: Sequence[Arg], cwd: Path | None = None, env: dict[str, str] | None = None,
        stdin: bytes = b"", preexec: Callable[[], None] | None = None) -> Result:
    """(exit code, stdout, stderr) of argv."""
    p = subprocess.run(argv, cwd=cwd, env=ENV if env is None else env, input=stdin,
                       capture_output=True, timeout=30, preexec_fn=preexec)
    return p.returncode, p.stdout, p.stderr


def both(cmd: str, args: Sequence[Arg], wrap: Sequence[Arg] = (), **kw: object) -> tuple[Result, Result]:
    """The reference's result, then ours, for the same arguments; wrap is a
    command prefix (setpriv ...)."""
    return (run([*wrap, ref(cmd), *args], **kw),  # type: ignore[arg-type]
            run([*wrap, ours(cmd), *args], **kw))  # type: ignore[arg-type]


def compare(cmd: str, args: Sequence[Arg], wrap: Sequence[Arg] = (), **kw: object) -> Result:
    want, got = both(cmd, args, wrap, **kw)
    assert got == want, f"{cmd} {args!r} differs\nreference: {want!r}\nours:      {got!r}"
    return got


def runnable_by(uid: int, gid: int) -> bool:
    """Whether that user can start our console scripts (the interpreter may
    live under a private home directory)."""
    p = subprocess.run([ref("setuidgid"), pwd.getpwuid(uid).pw_name, ours("pgrphack"), "true"],
                       capture_output=True, timeout=30)
    return p.returncode == 0


@pytest.fixture(scope="session")
def testuser() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged account, made for the test run and removed after."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root")
    try:
        pwd.getpwnam(USER)
        made = False
    except KeyError:
        try:
            subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True,
                           capture_output=True, timeout=60)
        except (OSError, subprocess.CalledProcessError) as e:
            pytest.skip(f"cannot create a user: {e}")
        made = True
    try:
        yield pwd.getpwnam(USER)
    finally:
        if made:
            subprocess.run(["userdel", USER], capture_output=True, timeout=60)
