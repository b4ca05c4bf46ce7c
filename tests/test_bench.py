"""The bench harness end to end on one small figure, and its table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Procs, have_ref

ROOT = Path(__file__).resolve().parent.parent
# bench/ is run from the checkout, not installed. Appended, so that it
# shadows nothing installed.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench import table  # noqa: E402


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not have_ref("supervise"), reason="needs Debian's daemontools")
def test_restart_figure_end_to_end_leaves_nothing_behind(tmp: Path, procs: Procs) -> None:
    work = tmp / "work"
    work.mkdir()
    out = tmp / "raw.json"
    env = dict(os.environ, TMPDIR=str(work))
    p = procs.start([sys.executable, "-m", "bench", "--quick", "--impl", "daemontools",
                     "--only", "restart", "--json", str(out)],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr.decode()
    rows = json.loads(out.read_text())["rows"]
    assert [r["figure"] for r in rows] == ["restart after the service is SIGKILLed (up > 1 s)"]
    value = rows[0]["results"]["daemontools"]
    # A supervisor restarts within milliseconds; 1 s or more would be djb's
    # post-start sleep, which the figure is built to stay clear of.
    assert 0 < value < 500
    assert len(rows[0]["samples"]["daemontools"][0]) == 4
    assert f"| {rows[0]['figure']} | {table.fmt(value, 'ms')} |" in stdout.decode()
    assert list(work.iterdir()) == []
    assert _processes_mentioning(str(work)) == []


def _row(results: dict[str, float | None], limit: float | None = 5.0,
         better: str = "lower") -> dict[str, object]:
    return {"figure": "f", "unit": "ms", "results": results, "target": "t",
            "limit": limit, "better": better}


def test_table_ratio_to_the_best_peer_and_target() -> None:
    rows = [
        _row({"daemontools": 2.0, "runit": 4.0, "dtd": 3.0}),
        _row({"daemontools": 2.0, "runit": None, "dtd": 8.0}),
        _row({"runit": 100.0, "daemontools": 400.0, "dtd": 200.0}, limit=150.0, better="higher"),
        _row({"daemontools": 0.0, "runit": 1.0, "dtd": None}),
        _row({"daemontools": 0.1, "runit": 1.0, "dtd": 12.34}),
    ]
    lines = table.markdown(rows).splitlines()
    assert lines[0] == "| figure | daemontools | runit | dtd | dtd / best peer | dtd target | met |"
    assert lines[2] == "| f | 2.00 ms | 4.00 ms | 3.00 ms | 1.5x | t | yes |"
    assert lines[3] == "| f | 2.00 ms | n/a | 8.00 ms | 4x | t | **no** |"
    assert lines[4] == "| f | 400 ms | 100 ms | 200 ms | 0.5x | t | yes |"
    assert lines[5] == "| f | 0.00 ms | 1.00 ms | n/a |  | t |  |"
    assert lines[6] == "| f | 0.10 ms | 1.00 ms | 12.3 ms | 123x | t | **no** |"


def test_table_without_dtd_has_no_ratio_columns() -> None:
    lines = table.markdown([_row({"runit": 1.5, "daemontools": 1234.4})]).splitlines()
    assert lines[0] == "| figure | daemontools | runit |"
    assert lines[2] == "| f | 1,234 ms | 1.50 ms |"


@pytest.mark.slow
def test_bench_venv_is_a_regular_install_with_a_real_interpreter(tmp: Path) -> None:
    from bench import venv

    bindir = venv.build(tmp)
    shebang = (bindir / "svstat").read_bytes().split(b"\n", 1)[0]
    assert shebang == b"#!" + bytes(bindir / "python")
    # A real interpreter behind the venv's python, not a version manager's
    # shell-script shim.
    assert Path(os.path.realpath(bindir / "python")).read_bytes()[:4] == b"\x7fELF"
    where = subprocess.run([str(bindir / "python"), "-I", "-c",
                            "import dtd.clients.svstat as m; print(m.__file__)"],
                           capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    assert where.startswith(str(tmp / "venv")), where
    site = next((tmp / "venv" / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("__editable__*")), "editable install"
