"""envdir against Debian's /usr/bin/envdir: every rule of envdir(8) as the
binary applies it, the environment's order included (``env`` prints it), and
every error path."""

import os
from pathlib import Path

import pytest

from clienttools import can_lose_dac, without_dac
from conftest import have_ref
from tooltools import ENV, compare

pytestmark = pytest.mark.skipif(not have_ref("envdir"), reason="daemontools not installed")


def files(d: Path, spec: dict[str, bytes]) -> Path:
    d.mkdir(exist_ok=True)
    for name, data in spec.items():
        (d / name).write_bytes(data)
    return d


@pytest.mark.parametrize("args", [[], ["d"], ["/nonexistent"]])
def test_usage(tmp: Path, args: list[str]) -> None:
    assert compare("envdir", args, cwd=tmp)[0] == 111  # sic: usage is 111


def test_rules(tmp: Path) -> None:
    d = files(tmp / "e", {
        "FIRST": b"hello  \t \nsecond line\n",  # first line, trailing blanks cut
        "NULS": b"a\0b\0  ",  # NULs become newlines, after the blanks are cut
        "HOME": b"",  # an empty file removes the variable
        "NL": b"\n",  # an empty first line sets an empty value
        "LEADING": b"  x",  # leading blanks stay
        "CR": b"v\r\n",  # only spaces and tabs are trailing blanks
        ".hidden": b"ignored",
        "NEW": b"no newline at end",
    })
    got = compare("envdir", [d, "env"], cwd=tmp)
    assert got[0] == 0
    env = got[1].decode()
    assert "FIRST=hello\n" in env and "HOME=" not in env and ".hidden" not in env
    assert "NULS=a\nb\n\n" in env and "LEADING=  x\n" in env and "NL=\n" in env


def test_overrides_keep_the_reference_order(tmp: Path) -> None:
    # each set or removed variable leaves its slot to the last one: the
    # resulting order shows whether the algorithm is the same
    d = files(tmp / "e", {"PATH": b"/bin:/usr/bin", "X": b"new", "HOME": b"", "A": b"1"})
    got = compare("envdir", [d, "/usr/bin/env"], cwd=tmp, env=dict(ENV, Q="q", R="r"))
    assert got[0] == 0


def test_name_with_equals_is_not_refused(tmp: Path) -> None:
    # the binary has no check: "X=Y" holding v sets X to Y=v, and an empty
    # "Z=W" sets Z to W
    d = files(tmp / "e", {"X=Y": b"v", "Z=W": b""})
    got = compare("envdir", [d, "env"], cwd=tmp)
    assert b"X=Y=v\n" in got[1] and b"Z=W\n" in got[1]


def test_subdirectory_is_an_error(tmp: Path) -> None:
    d = files(tmp / "e", {"A": b"1"})
    (d / "SUB").mkdir()
    got = compare("envdir", [d, "env"], cwd=tmp)
    assert got[0] == 111 and got[2] == f"envdir: fatal: unable to read {d}/SUB: is a directory\n".encode()


def test_dangling_symlink_reuses_the_previous_value(tmp: Path) -> None:
    # readdir order decides which value is "previous": the same directory
    # gives both programs the same order
    d = files(tmp / "e", {"A": b"hello", "B": b"x\0y", "C": b""})
    for name in ("D1", "D2", "D3"):
        (d / name).symlink_to(tmp / "nowhere")
    compare("envdir", [d, "env"], cwd=tmp)


def test_fifo_reads_as_empty(tmp: Path) -> None:
    d = files(tmp / "e", {"A": b"1"})
    os.mkfifo(d / "X")
    got = compare("envdir", [d, "env"], cwd=tmp)
    assert b"X=" not in got[1]


def test_not_a_directory(tmp: Path) -> None:
    (tmp / "f").write_bytes(b"")
    got = compare("envdir", ["f", "env"], cwd=tmp)
    assert got[2] == b"envdir: fatal: unable to switch to directory f: not a directory\n"


def test_missing_directory(tmp: Path) -> None:
    got = compare("envdir", ["x", "env"], cwd=tmp)
    assert got == (111, b"", b"envdir: fatal: unable to switch to directory x: file does not exist\n")


def test_child_runs_in_the_starting_directory(tmp: Path) -> None:
    d = files(tmp / "e", {"A": b"1"})
    got = compare("envdir", ["e", "pwd"], cwd=tmp)
    assert got[1] == f"{tmp}\n".encode()
    assert d.exists()


def test_path_lookup_uses_the_original_path(tmp: Path) -> None:
    files(tmp / "e", {"PATH": b"/nonexistent"})
    got = compare("envdir", ["e", "env"], cwd=tmp)
    assert got[0] == 0 and b"PATH=/nonexistent\n" in got[1]


def test_child_exit_code_and_errors(tmp: Path) -> None:
    files(tmp / "e", {})
    assert compare("envdir", ["e", "sh", "-c", "exit 7"], cwd=tmp)[0] == 7
    got = compare("envdir", ["e", "nosuchprogram"], cwd=tmp)
    assert got == (111, b"", b"envdir: fatal: unable to run nosuchprogram: file does not exist\n")


def test_binary_names_and_values(tmp: Path) -> None:
    d = tmp / "e"
    d.mkdir()
    (d / "V").write_bytes(b"\xff\xfe caf\xc3\xa9")
    with open(os.path.join(os.fsencode(d), b"N\xff"), "wb") as f:
        f.write(b"1")
    compare("envdir", [d, "env"], cwd=tmp)


@pytest.mark.skipif(not can_lose_dac(), reason="needs root and setpriv")
def test_access_denied(tmp: Path) -> None:
    files(tmp / "closed", {"A": b"1"}).chmod(0)
    files(tmp / "search", {"A": b"1"}).chmod(0o100)  # chdir works, readdir does not
    files(tmp / "file", {"A": b"1", "B": b"2"})
    (tmp / "file" / "B").chmod(0)
    nodac = without_dac([])
    for d in ("closed", "search", "file"):
        got = compare("envdir", [d, "env"], wrap=nodac, cwd=tmp)
        assert got[0] == 111 and b"access denied" in got[2]
    here = tmp / "here"
    here.mkdir(mode=0o100)  # the starting directory cannot be opened again
    got = compare("envdir", [tmp / "file", "env"], wrap=nodac, cwd=here)
    assert got[2] == b"envdir: fatal: unable to switch to current directory: access denied\n"
