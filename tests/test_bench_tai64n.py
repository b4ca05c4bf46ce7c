"""bench/tai64n.py on a small input, with the development venv's commands
(the real bench builds a regular install): its inputs are what it says,
and its rows fit bench/__main__.py's table."""

import sys
from pathlib import Path

import pytest

from conftest import have_ref, ours, ref
from tooltools import ENV, run

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # bench/ runs from the checkout

from bench import table, tai64n  # noqa: E402

pytestmark = pytest.mark.skipif(not have_ref("tai64nlocal"), reason="daemontools not installed")


def test_inputs(tmp: Path) -> None:
    tai64n.plain(tmp / "plain", 10_000)
    tai64n.stamped(tmp / "stamped", 2_000_000)
    tai64n.stamped(tmp / "quiet", 10_000, 1)
    tai64n.stamped(tmp / "sparse", 10_000, 1, 60)
    for name in ("plain", "stamped", "quiet", "sparse"):
        lines = (tmp / name).read_bytes().split(b"\n")
        assert lines[-1] == b"" and {len(line) + 1 for line in lines[:-1]} == {tai64n.LINE}
    # a second apart, a minute apart
    for name, gap in (("quiet", 1), ("sparse", 60)):
        labels = [int(line[1:17], 16) for line in (tmp / name).read_bytes().split(b"\n")[:-1]]
        assert {b - a for a, b in zip(labels, labels[1:])} == {gap}
    # the stamps are ones the reference converts
    data = (tmp / "stamped").read_bytes()
    got = run([ref("tai64nlocal")], env=dict(ENV, TZ=tai64n.TZ), stdin=data)
    assert got[0] == 0 and got[1].count(b"\n") == 20000 and not got[1].startswith(b"@")


@pytest.mark.parametrize("name", ["tai64n", "tai64nlocal"])
def test_rows(tmp: Path, name: str) -> None:
    data = tmp / "in"
    if name == "tai64nlocal":
        tai64n.stamped(data, 1_000_000)
    else:
        tai64n.plain(data, 1_000_000)
    row = tai64n.measure(name, Path(ours(name)).parent, data, runs=1)
    assert set(row["results"]) == {"daemontools", "dtd"}
    assert all(v > 0 for v in row["results"].values())
    assert row["figure"].startswith(f"{name}, 100-byte lines") and row["better"] == "higher"
    assert f"| {row['figure']} |" in table.markdown([row])
