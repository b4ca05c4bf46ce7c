"""pathexec: djb's $PATH search and environment building, seen through
pgrphack and envuidgid against the reference's, plus environ() directly."""

import os
from pathlib import Path

import pytest

from conftest import have_ref
from dtd.env import pathexec
from tooltools import ENV, compare

pytestmark = pytest.mark.skipif(not have_ref("pgrphack"), reason="daemontools not installed")


@pytest.fixture
def bins(tmp: Path) -> Path:
    """Directories holding programs that cannot run, each for a reason."""
    (tmp / "noexec").mkdir()
    (tmp / "noexec" / "prog").write_text("#!/bin/sh\necho no\n")  # mode 644: EACCES
    (tmp / "noshebang").mkdir()
    (tmp / "noshebang" / "prog").write_text("echo hi\n")  # ENOEXEC: no /bin/sh fallback
    (tmp / "noshebang" / "prog").chmod(0o755)
    (tmp / "good").mkdir()
    (tmp / "good" / "prog").write_text("#!/bin/sh\necho good \"$0\" \"$@\"\n")
    (tmp / "good" / "prog").chmod(0o755)
    (tmp / "dir").mkdir()
    (tmp / "dir" / "prog").mkdir()  # EACCES on a directory
    (tmp / "file").write_text("")  # ENOTDIR when used as a PATH entry
    return tmp


@pytest.mark.parametrize("path", [
    "good", "noexec:good", "noexec", "noshebang:good", "dir:good", "dir", "file:good",
    "nothere:good", "nothere", "", ":", "good:", "noexec:nothere",
])
def test_search(bins: Path, path: str) -> None:
    entries = ":".join(str(bins / p) if p else "" for p in path.split(":"))
    env = dict(ENV, PATH=entries)
    compare("pgrphack", ["prog", "a b", ""], cwd=bins, env=env)


def test_default_path_when_unset(bins: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "PATH"}
    got = compare("pgrphack", ["env"], cwd=bins, env=env)
    assert got[0] == 0  # found in /bin:/usr/bin


@pytest.mark.parametrize("argv", [
    ["./good/prog", "x"], ["good/prog"], ["./noexec/prog"], ["./noshebang/prog"], ["./dir/prog"],
    ["./nothere"], ["/"], [""],
])
def test_slash_means_no_search(bins: Path, argv: list[str]) -> None:
    compare("pgrphack", argv, cwd=bins)


def test_empty_entry_is_the_current_directory(bins: Path) -> None:
    got = compare("pgrphack", ["prog"], cwd=bins / "good", env=dict(ENV, PATH="/nonexistent::"))
    assert got[1] == b"good ./prog\n"


def test_child_signal_dispositions(tmp: Path) -> None:
    """The child does not inherit Python's ignored SIGPIPE and SIGXFSZ."""
    got = compare("pgrphack", ["grep", "^Sig[IB]", "/proc/self/status"], cwd=tmp)
    ign = int(got[1].split(b"SigIgn:")[1].split()[0], 16)
    assert not ign & (1 << 12) and not ign & (1 << 24)  # bits of SIGPIPE (13), SIGXFSZ (25)


def test_environ_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set or removed variable's slot goes to the last variable; new values
    go at the end."""
    monkeypatch.setattr(os, "environb", {b"A": b"1", b"B": b"2", b"C": b"3", b"D": b"4"})
    got = pathexec.environ([(b"B", b"new"), (b"A", None), (b"E", b"5"), (b"X=Y", b"v"), (b"Z=W", None)])
    # B's slot goes to D, B=new is appended, A's slot goes to B=new, ...
    assert list(got.items()) == [(b"B", b"new"), (b"D", b"4"), (b"C", b"3"), (b"E", b"5"),
                                 (b"X", b"Y=v"), (b"Z", b"W")]
    assert pathexec.environ([(b"C", None), (b"C", None)]) == {b"A": b"1", b"B": b"2", b"D": b"4"}


@pytest.mark.parametrize("tool", [["pgrphack"], ["setlock", "lk"], ["envdir", "."],
                                  ["softlimit", "-t", "100"], ["envuidgid", "root"],
                                  ["setuidgid", "root"]])
def test_child_descriptors(tmp: Path, tool: list[str]) -> None:
    """The child gets what we were given and nothing of the interpreter's
    (setlock adds its lock, as the reference does)."""
    got = compare(tool[0], [*tool[1:], "ls", "/proc/self/fd"], cwd=tmp)
    assert got[0] == 0
    if tool[0] == "setlock":
        got = compare(tool[0], [*tool[1:], "readlink", "/proc/self/fd/3"], cwd=tmp)
        assert got[1] == f"{tmp}/lk\n".encode()
