"""multilog against Debian's /usr/bin/multilog, run side by side on the same
input: log directories (names with stamps masked, modes, sizes, contents
with stamps masked), stderr and exit codes must be the same."""

import os
import re
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from conftest import have_ref, ours, ref

pytestmark = pytest.mark.skipif(not have_ref("multilog"), reason="no reference multilog")

STAMP = re.compile(rb"@[0-9a-f]{24}")
Snapshot = list[tuple[str, int, int, bytes]]


def mask(data: bytes) -> bytes:
    return STAMP.sub(b"@STAMP", data)


def snapshot(top: Path) -> Snapshot:
    """Every file under top, in name order (stamps sort by time)."""
    out: Snapshot = []
    for path in sorted(top.rglob("*")):
        st = path.lstat()
        rel = mask(os.fsencode(path.relative_to(top))).decode()
        data = b"" if path.is_dir() else mask(path.read_bytes())
        out.append((rel, st.st_mode, 0 if path.is_dir() else st.st_size, data))
    return out


def lines_input(seed: int, count: int, partial: bool = True) -> bytes:
    """Lines of many lengths around the limits that matter: 1000 bytes kept
    per line (974 after a stamp), 200 bytes of an alert, 2000 bytes before
    the size, and lines longer than a whole s4096 file."""
    import random
    rnd = random.Random(seed)
    lengths = [0, 1, 5, 60, 100, 199, 200, 201, 973, 974, 975, 999, 1000, 1001,
               1500, 2100, 5000]
    body = b"abcdefghijklmnopqrstuvwxyz" * 200
    out = []
    for i in range(count):
        n = rnd.choice(lengths + [rnd.randrange(3000)])
        word = b"STAT" if i % 7 == 0 else b"line"
        out.append((b"%s %d " % (word, i) + body)[:n])
    return b"\n".join(out) + (b"\nno newline at the end" if partial else b"\n")


Prepare = Callable[[Path], None]


def run_side(prog: str, work: Path, args: list[str], data: bytes,
             prepare: Prepare | None) -> tuple[int, bytes, Snapshot]:
    work.mkdir()
    if prepare:
        prepare(work)
    inp = work.parent / (work.name + ".in")
    inp.write_bytes(data)
    with inp.open("rb") as f:
        r = subprocess.run([prog, *args], stdin=f, cwd=work, capture_output=True, timeout=60)
    inp.unlink()
    return r.returncode, mask(r.stderr), snapshot(work)


def both(tmp: Path, args: list[str], data: bytes, prepare: Prepare | None = None
         ) -> tuple[int, bytes, Snapshot]:
    want = run_side(ref("multilog"), tmp / "ref", args, data, prepare)
    got = run_side(ours("multilog"), tmp / "ours", args, data, prepare)
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert [e[:3] for e in got[2]] == [e[:3] for e in want[2]]
    assert got[2] == want[2]
    return got


# ---- must show 2: the same log directory ------------------------------

SCENARIOS = {
    "plain": ["./main"],
    "stamped": ["t", "./main"],
    "rotation": ["s4096", "n3", "./main"],
    "rotation-stamped": ["t", "s4096", "n3", "./main"],
    "rotation-many": ["t", "s5000", "n100", "./main"],
    "select": ["-*", "+* 1*", "./a", "-* 3*", "e", "./b", "+STAT*", "s4096", "./c"],
    "select-stamped": ["t", "-*", "+* 1*", "./a", "-* 3*", "e", "./b", "-*", "+* STAT*",
                       "e", "s4096", "./c"],
    "status-file": ["-*", "+STAT*", "=status", "./main"],
    "status-file-stamped": ["t", "+*", "=status"],
    "processor": ["s4096", "n5", "!tr a-z A-Z; (cat <&4; echo run) >&5", "./main"],
    "processor-two-dirs": ["t", "s4096", "n3", "!wc -c; cat <&4 >&5; echo x >&5", "./p",
                           "!cat", "n4", "./q"],
    "ignored-actions": ["x", "foo", "tt", "./main"],
    "tiny-size": ["s0", "n0", "./a", "s99999999999", "n1", "./b", "sabc", "./c",
                  "s18446744073709551617", "./d"],
    "star-star": ["-**", "+**3*", "./a", "-*", "+*1", "./b"],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_directory_as_reference(tmp: Path, name: str) -> None:
    both(tmp, SCENARIOS[name], lines_input(len(name), 300))


@pytest.mark.parametrize("stamp", [[], ["t"]], ids=["plain", "stamped"])
def test_big_input_mixes_whole_reads_and_exact_cuts(tmp: Path, stamp: list[str]) -> None:
    """Megabytes between rotations go through whole reads; the segments
    that bring current near its size are replayed line at a time."""
    both(tmp, [*stamp, "s150000", "n100", "./a", "s16777215", "./b"], lines_input(3, 4000))


@pytest.mark.parametrize("stamp", [[], ["t"]], ids=["plain", "stamped"])
def test_selection_over_whole_buffers(tmp: Path, stamp: list[str]) -> None:
    """Short lines only: patterns run over whole buffers of lines."""
    data = b"".join(b"%d %s %d\n" % (i, b"STAT" if i % 5 else b"info", i % 13)
                    for i in range(40000)) + b"tail without newline"
    both(tmp, [*stamp, "-* 1*", "./a", "-*", "+* STAT*", "+* info 1*", "s4096", "n400", "./b",
               "+*", "-* *3", "s100000", "./c"], data)


@pytest.mark.parametrize("stamp", [[], ["t"]], ids=["plain", "stamped"])
def test_alerts_and_status_over_whole_buffers(tmp: Path, stamp: list[str]) -> None:
    """Short lines, some longer than an alert: e and =file a buffer at a time."""
    data = b"".join(b"%d %s\n" % (i, b"y" * (i % 450)) for i in range(20000))
    both(tmp, [*stamp, "-* *7*", "e", "=st", "./a", "+*", "=all", "./b"], data)


def test_long_lines_without_newline_rotate_at_size(tmp: Path) -> None:
    both(tmp, ["s4096", "n5", "./main"], b"x" * 30000)


def test_empty_input(tmp: Path) -> None:
    both(tmp, ["t", "./main"], b"")


def test_empty_lines_get_a_stamp(tmp: Path) -> None:
    both(tmp, ["t", "e", "./main"], b"\n\n\nx\n\n")


def first_run(args: list[str], data: bytes, then: Prepare | None = None) -> Prepare:
    def prepare(work: Path) -> None:
        with subprocess.Popen([ours("multilog"), *args], stdin=subprocess.PIPE, cwd=work) as p:
            p.communicate(data, timeout=60)
        assert p.returncode == 0
        if then:
            then(work)
    return prepare


def test_restart_on_finished_current(tmp: Path) -> None:
    args = ["s4096", "n5", "./main"]
    got = both(tmp, args, lines_input(7, 40), first_run(args, lines_input(8, 30)))
    assert any(name.endswith(".s") for name, *_ in got[2])


def test_restart_on_unfinished_current(tmp: Path) -> None:
    args = ["n5", "./main"]

    def unfinish(work: Path) -> None:
        (work / "main" / "current").chmod(0o644)

    got = both(tmp, args, lines_input(9, 40), first_run(args, lines_input(10, 30), unfinish))
    assert any(name.endswith(".u") for name, *_ in got[2])


@pytest.mark.parametrize("processed", [0o744, 0o644])
def test_restart_recovers_processor_files(tmp: Path, processed: int) -> None:
    def leftovers(work: Path) -> None:
        d = work / "main"
        d.mkdir(mode=0o700)
        for name, mode in (("current", 0o644), ("previous", 0o744), ("processed", processed),
                           ("newstate", 0o644), ("state", 0o644)):
            (d / name).write_bytes(name.encode() + b"\n")
            (d / name).chmod(mode)

    both(tmp, ["!cat", "./main"], b"new\n", leftovers)


def test_processor_gets_default_signals_and_its_descriptors(tmp: Path) -> None:
    # grep's own mask: what the shell passed on through exec
    proc = ("!grep -E '^Sig(Ign|Blk)' /proc/self/status >&5; cat <&4 >&5; "
            "echo $(ls /proc/$$/fd) >&5; cat")
    got = both(tmp, ["s4096", proc, "./main"], lines_input(11, 60))
    state = [e for e in got[2] if e[0] == "main/state"][0][3]
    # stdin, stdout, stderr, the two state descriptors (and the shell's own)
    assert re.search(rb"\n0 1 2 (\d+ )*4 5\n", state)


@pytest.mark.slow
def test_failed_processor_runs_again(tmp: Path) -> None:
    # fails once (no marker yet), then works: the file is processed once
    proc = "!if [ -e ../marker ]; then cat; else touch ../marker; exit 1; fi"
    both(tmp, ["s4096", proc, "./main"], b"a" * 3000 + b"\n" + b"b" * 1500 + b"\n")


# ---- error paths: golden transcripts, produced by the reference ----------

def _file(name: str) -> Prepare:
    return lambda work: (work / name).write_text("x\n")


def _dir(name: str) -> Prepare:
    return lambda work: (work / name).mkdir(parents=True)


ERRORS: dict[str, tuple[list[str], Prepare | None]] = {
    "dir-is-a-file": (["./f"], _file("f")),
    "dir-parent-missing": (["./no/such"], None),
    "current-is-a-directory": (["./d"], _dir("d/current")),
    "status-file-missing-dir": (["=no/such", "./d"], None),
    "status-file-is-a-directory": (["=sub", "./d"], _dir("sub")),
    "second-dir-fails-after-first": (["./ok", "./f"], _file("f")),
    "same-dir-twice": (["./d", "s5000", "./d"], None),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_same_as_reference(tmp: Path, name: str) -> None:
    args, prepare = ERRORS[name]
    rc, err, _ = both(tmp, args, b"line\n", prepare)
    assert rc == 111
    assert err.startswith(b"multilog: fatal: unable to ")


def test_locked_directory_fails_like_reference(tmp: Path) -> None:
    import fcntl
    for side, prog in (("ref", ref("multilog")), ("ours", ours("multilog"))):
        d = tmp / side
        d.mkdir()
        with open(d / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            r = subprocess.run([prog, "./" + d.name], input=b"x\n", cwd=tmp,
                               capture_output=True, timeout=30)
        assert r.returncode == 111
        assert r.stderr == b"multilog: fatal: unable to lock directory ./%s: temporary failure\n" % (
            d.name.encode())
        assert not (d / "current").exists()


# ---- pure parts ---------------------------------------------------------

def test_compiled_patterns_agree_with_djb_match() -> None:
    from dtd.log.multilog_script import compile_pattern, match
    patterns = [b"", b"*", b"**", b"a*", b"*a", b"a*b", b"*a*", b"**a", b"a**b", b"*]*",
                b"named[*]: Cleaned cache *", b"*.*", b"[*", b"*\\*", b"*^"]
    lines = [b"", b"a", b"b", b"ab", b"ba", b"aab", b"a*b", b"**", b"x]y", b"named[1]: Cleaned cache of 3 RRs.",
             b"named[1]]: Cleaned cache x", b"a.b.c", b"[", b"\\", b"^"]
    for p in patterns:
        rx = compile_pattern(p)
        for line in lines:
            assert bool(rx.fullmatch(line)) == match(p, line), (p, line)


# ---- error paths without the power to override permissions ---------------

NOBODY = 65534
NO_DAC = "--bounding-set=-dac_override,-dac_read_search,-fowner"


def _owned_by_nobody(work: Path) -> None:
    for path in (work, *work.rglob("*")):
        os.chown(path, NOBODY, NOBODY)


def _unwritable_current(work: Path) -> None:
    d = work / "d"
    d.mkdir(mode=0o700)
    (d / "current").write_bytes(b"old\n")
    (d / "current").chmod(0o744)  # finished: multilog appends to it
    os.chown(d / "current", NOBODY, NOBODY)


UNPRIVILEGED: dict[str, tuple[list[str], Prepare]] = {
    "directory-not-writable": (["./d"], lambda w: (_dir("d")(w), _owned_by_nobody(w))),
    "parent-not-writable": (["./e"], _owned_by_nobody),
    "status-file-not-writable": (["=st", "./d"], _owned_by_nobody),
    "current-not-writable": (["./d"], _unwritable_current),
}


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
                    reason="needs root and setpriv")
@pytest.mark.parametrize("name", sorted(UNPRIVILEGED))
def test_permission_error_same_as_reference(tmp: Path, name: str) -> None:
    """Root without CAP_DAC_OVERRIDE meets files of another user as any
    unprivileged user does (our interpreter, under /root, stays reachable)."""
    args, prepare = UNPRIVILEGED[name]
    results = []
    for side, prog in (("ref", ref("multilog")), ("ours", ours("multilog"))):
        work = tmp / side
        work.mkdir(mode=0o755)
        prepare(work)
        r = subprocess.run(["/usr/bin/setpriv", NO_DAC, prog, *args], input=b"line\n",
                           cwd=work, capture_output=True, timeout=30)
        results.append((r.returncode, r.stderr, snapshot(work)))
    assert results[0][0] == 111
    assert b": access denied\n" in results[0][1] or b"does not exist" in results[0][1]
    assert results[1] == results[0]


def test_line_regexes_agree_with_djb_match() -> None:
    """The whole-buffer form of a pattern selects the lines match() does."""
    from dtd.log.multilog_script import match
    from dtd.log.multilog_select import line_regex
    patterns = [b"", b"*", b"**", b"a*", b"*a", b"a*b", b"*a*", b"**a", b"a**b", b"*]*",
                b"* 1*", b"*\n*", b"*.*", b"x"]
    lines = [b"", b"a", b"b", b"ab", b"ba", b"aab", b"a*b", b"**", b"x]y", b"q 1 r", b"a.b",
             b"x", b"*", b"@400000006b055aed186c8b49 1 x"]
    buf = b"\n" + b"".join(line + b"\n" for line in lines)
    starts, pos = [], 1
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    for p in patterns:
        rx = line_regex(p)
        found = set() if rx is None else {m.start() + 1 for m in rx.finditer(buf)}
        assert found == {s for s, line in zip(starts, lines) if match(p, line)}, p
