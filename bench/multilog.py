"""python -m bench.multilog [--quick]: multilog throughput in MB/s of input
and memory while logging, Debian's daemontools and s6-log against dtd
installed as users get it (bench.venv), side by side in one run, median
of 3 runs each (interleaved, so that all see the same machine).

Input: 100-byte lines, 200 MB (20 MB with --quick), from a file on stdin;
the logs go to a tmpfs (/dev/shm when there is one), so the figure is the
logger's own work and not the disk's. Scripts: ``t s16777215 n10 DIR`` and
``s16777215 n10 DIR``; s6-log runs the same script in its own syntax
(``n10 s16777215 t DIR``). A third row, for information, selects a tenth
of the lines with patterns (``t '-*' '+* *5 *' s16777215 n10 DIR``). Memory is the peak resident set of the logger
(the kernel's VmHWM, sampled every 2 ms while it runs).
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

LINE = 100
SIZE = 16777215
NUM = 10
TARGET_SPEED = 1.5  # times the reference
TARGET_RSS_MIB = 20.0


def lines(path: Path, size: int) -> None:
    """Numbered 100-byte lines, so that no two are alike."""
    filler = b"x" * LINE
    with open(path, "wb") as f:
        for block in range(0, size // LINE, 10000):
            f.write(b"".join((b"%09d " % n + filler)[:LINE - 1] + b"\n"
                             for n in range(block, min(block + 10000, size // LINE))))


def scratch() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="dtd-bench-multilog-", dir=base))


def hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def one(argv: list[str], data: Path) -> tuple[float, float]:
    """Seconds taken and peak RSS in MiB of one run.

    The peak is VmHWM, read while the logger runs: wait4's ru_maxrss would
    also count the forked bench process before its exec.
    """
    peak = 0.0
    with open(data, "rb") as stdin:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL)
        while True:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
            if pid:
                break
            hwm = hwm_mib(p.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            time.sleep(0.002)  # sampling interval; the exit is caught by waitpid
        elapsed = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}")
    return elapsed, peak


# a selection (s6-log's syntax is the same here): a tenth of the lines
SELECT = ["-*", "+* *5 *"]


def programs(ours: Path, stamp: bool, logdir: Path, select: bool = False
             ) -> dict[str, list[str]]:
    script = ((["t"] if stamp else []) + (SELECT if select else [])
              + [f"s{SIZE}", f"n{NUM}", str(logdir)])
    progs = {"daemontools": ["/usr/bin/multilog", *script],
             "dtd": [str(ours / "multilog"), *script]}
    if select:
        return progs
    if Path("/usr/bin/s6-log").exists():
        progs["s6"] = ["/usr/bin/s6-log", f"n{NUM}", f"s{SIZE}", *(["t"] if stamp else []),
                       str(logdir)]
    return progs


def measure(ours: Path, data: Path, work: Path, stamp: bool, runs: int, select: bool = False
            ) -> tuple[dict[str, Any], dict[str, list[float]]]:
    size = data.stat().st_size
    rates: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    for _ in range(runs):
        for impl, argv in programs(ours, stamp, work / "log", select).items():
            shutil.rmtree(work / "log", ignore_errors=True)
            elapsed, peak = one(argv, data)
            rates.setdefault(impl, []).append(size / elapsed / 1e6)
            rss.setdefault(impl, []).append(peak)
    shutil.rmtree(work / "log", ignore_errors=True)
    results = {k: statistics.median(v) for k, v in rates.items()}
    script = " ".join(["t"] * stamp + [f"'{a}'" for a in SELECT] * select
                      + [f"s{SIZE}", f"n{NUM}"])
    row = {
        "figure": f"multilog {script}, {LINE}-byte lines, {size // 1_000_000} MB, MB/s",
        "unit": "MB/s",
        "results": results,
        "target": "(no target)" if select else f">= {TARGET_SPEED}x the reference",
        "limit": None if select else TARGET_SPEED * results["daemontools"],
        "better": "higher",
        "runs": rates,
    }
    return row, rss


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows of bench/__main__.py's table."""
    size = 20_000_000 if quick else 200_000_000
    runs = 1 if quick else 3
    ours = venv.bindir()
    work = scratch()
    try:
        lines(work / "input", size)
        stamped, rss_t = measure(ours, work / "input", work, True, runs)
        plain, rss_p = measure(ours, work / "input", work, False, runs)
        selected, _ = measure(ours, work / "input", work, True, runs, select=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peaks = {k: max(rss_t[k] + rss_p[k]) for k in rss_t}
    memory = {
        "figure": "multilog memory while logging (peak RSS of both scripts), MiB",
        "unit": "MiB",
        "results": peaks,
        "target": f"<= {TARGET_RSS_MIB:.0f} MiB",
        "limit": TARGET_RSS_MIB,
        "better": "lower",
        "runs": {k: rss_t[k] + rss_p[k] for k in rss_t},
    }
    return [stamped, plain, selected, memory]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.multilog", description=__doc__)
    p.add_argument("--quick", action="store_true", help="20 MB, one run")
    args = p.parse_args(argv)
    try:
        rows = run(args.quick)
    finally:
        venv.cleanup()
    print(table.markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
