"""python -m bench.tai64n [--quick]: tai64n and tai64nlocal throughput in
MB/s of input, Debian's daemontools against dtd installed as users get it
(bench.venv), side by side in one run, median of 3 runs each.

Input: 100-byte lines, about 100 MB (one run with --quick), from a file on
stdin, output to /dev/null. tai64nlocal reads lines of the same size that
tai64n stamped (25 bytes of stamp, 75 of text), converted in
America/New_York, a zone with daylight saving time: from a busy log (10000
lines a second), a quiet one (a line a second, 11 days) and a sparse one (a
line a minute, two years): tai64nlocal finds dates a different way for each.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import table, venv

REF = Path("/usr/bin")
LINE = 100
TZ = "America/New_York"


def plain(path: Path, size: int) -> None:
    line = b"x" * (LINE - 1) + b"\n"
    with open(path, "wb") as f:
        f.write(line * (size // LINE))


def stamped(path: Path, size: int, per_second: int = 10000, gap: int = 1) -> None:
    """Lines as tai64n writes them, per_second lines in each second, gap
    seconds apart."""
    start = 0x4000000065000000
    lines = size // LINE
    with open(path, "wb") as f:
        for block in range(0, lines, 10000):
            f.write(b"".join(b"@%016x%08x %s\n" % (start + n // per_second * gap,
                                                    n % per_second * 99991,
                                                    b"y" * (LINE - 27))
                             for n in range(block, min(block + 10000, lines))))


def seconds(argv: list[str], data: Path, env: dict[str, str]) -> float:
    with open(data, "rb") as stdin, open(os.devnull, "wb") as stdout:
        t = time.perf_counter()
        subprocess.run(argv, stdin=stdin, stdout=stdout, env=env, check=True, timeout=600)
        return time.perf_counter() - t


def measure(name: str, ours: Path, data: Path, runs: int, what: str = "") -> dict[str, Any]:
    size = data.stat().st_size
    env = {"PATH": "/usr/bin:/bin", "TZ": TZ}
    rates: dict[str, list[float]] = {"daemontools": [], "dtd": []}
    for _ in range(runs):  # interleaved, so that both see the same machine
        for impl, prog in (("daemontools", REF / name), ("dtd", ours / name)):
            rates[impl].append(size / seconds([str(prog)], data, env) / 1e6)
    results = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "figure": f"{name}, {LINE}-byte lines, {size // 1_000_000} MB{what}",
        "unit": "MB/s",
        "results": results,
        "target": ">= 1.0x the reference",
        "limit": results["daemontools"],
        "better": "higher",
        "runs": rates,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows of bench/__main__.py's table."""
    # the full size even when quick: at 10 MB the interpreter's start-up
    # (some 30 ms) would be a fifth of the figure
    size = 100_000_000
    runs = 1 if quick else 3
    ours = venv.bindir()
    top = Path(tempfile.mkdtemp(prefix="dtd-bench-tai64n-"))
    try:
        plain(top / "plain", size)
        stamped(top / "busy", size, 10000)
        stamped(top / "quiet", size, 1)
        stamped(top / "sparse", size, 1, 60)
        return [measure("tai64n", ours, top / "plain", runs),
                measure("tai64nlocal", ours, top / "busy", runs, f", TZ={TZ}, 10000 lines a second"),
                measure("tai64nlocal", ours, top / "quiet", runs, f", TZ={TZ}, a line a second"),
                measure("tai64nlocal", ours, top / "sparse", runs, f", TZ={TZ}, a line a minute")]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tai64n", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one run instead of three")
    args = p.parse_args(argv)
    try:
        rows = run(args.quick)
    finally:
        venv.cleanup()
    print(table.markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
