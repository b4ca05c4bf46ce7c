"""python -m bench [--quick] [--runs N] [--only NAME,...] [--impl NAME,...]
[--json PATH]: every figure for every implementation in one run, one
markdown table on stdout, the raw figures as JSON (bench/results/ by
default), progress on stderr."""

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import impls, proctree, rig, supervision, table, venv, worker

HERE = Path(__file__).resolve().parent
# Bench modules of other areas, each with run(quick) -> rows, included when
# they exist.
EXTRAS = ("multilog", "tai64n", "api")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("daemontools", "runit", "s6", "supervisor"):
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                              capture_output=True, text=True)
        out[pkg] = done.stdout if done.returncode == 0 else "not installed"
    try:
        head = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        out["dtd"] = head + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        out["dtd"] = "unknown"
    return out


def _implementations(wanted: set[str] | None) -> list[impls.Impl]:
    chosen: list[impls.Impl] = []
    for make in impls.PEERS:
        impl = make()
        if wanted is None or impl.name in wanted:
            if impl.usable(impl.scanner[0]):
                chosen.append(impl)
            else:
                _log(f"{impl.name}: {impl.bindir / impl.scanner[0]} not installed, left out")
    if wanted is None or "dtd" in wanted:
        _log("building dtd into a fresh virtualenv (a regular install, as users get it)")
        chosen.append(impls.dtd(venv.bindir()))
    return chosen


MARKS = ("<!-- bench:start -->", "<!-- bench:end -->")


def _put_in_readme(text: str) -> None:
    readme = HERE.parent / "README.md"
    content = readme.read_text()
    start, end = content.find(MARKS[0]), content.find(MARKS[1])
    if start < 0 or end < start:
        _log(f"README.md has no {MARKS[0]} ... {MARKS[1]} section: left as it is")
        return
    readme.write_text(content[:start + len(MARKS[0])] + "\n" + text + "\n" + content[end:])
    _log("README.md: performance section updated")


def _terminate(signo: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signo)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    p.add_argument("--runs", type=int, help="runs to take the median of (3; 1 with --quick)")
    p.add_argument("--only", help="comma-separated figures: "
                   + ",".join([f.name for f in supervision.FIGURES] + list(EXTRAS)))
    p.add_argument("--impl", help="comma-separated implementations (default: all;"
                   " with --quick: daemontools,runit,dtd)")
    p.add_argument("--json", type=Path, help="where to write the raw figures")
    p.add_argument("--readme", action="store_true",
                   help=f"also put the table into README.md, between {MARKS[0]} and {MARKS[1]}")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    wanted = set(args.impl.split(",")) if args.impl else None
    if args.quick and wanted is None:
        # The smoke run keeps to issue 2's three columns to stay near a minute.
        wanted = {"daemontools", "runit", "dtd"}

    signal.signal(signal.SIGTERM, _terminate)
    # Everything a supervisor leaves behind is re-parented to us, so that
    # each benchmark can end all it started.
    proctree.become_subreaper()
    started = time.time()
    rig.deferred = []
    try:
        chosen = _implementations(wanted)
        rows: list[dict[str, Any]] = supervision.run(args.quick, chosen, only, args.runs, _log)
        floor = worker.baseline()
        for name in EXTRAS:
            if (HERE / f"{name}.py").exists() and (only is None or name in only):
                _log(f"{name}: running bench/{name}.py")
                try:
                    rows += importlib.import_module(f"bench.{name}").run(args.quick)
                except Exception as e:  # the other figures are still worth printing
                    _log(f"{name}: failed: {type(e).__name__}: {e}")
    finally:
        proctree.kill_all_below()
        rig.remove_deferred()
        venv.cleanup()

    report = (table.markdown(rows)
              + f"\n\nStart figures count from the event to the first line ./run (a dash script)"
              f" writes; with no supervisor in between, that takes {floor:.2f} ms here.")
    print(report)
    out = args.json or HERE / "results" / time.strftime("bench-%Y%m%dT%H%M%SZ.json", time.gmtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1), "quick": args.quick,
            "runs": args.runs or (1 if args.quick else 3), "host": platform.node(),
            "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "versions": _versions(),
            "run_start_floor_ms": floor}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    _log(f"raw figures: {out}")
    if args.readme:
        mode = "`make bench` (`python -m bench" + (" --quick" if args.quick else "") + "`)"
        _put_in_readme(f"{report}\n\nMeasured by {mode} on {meta['started']}, {os.cpu_count()} CPUs,"
                       f" Linux {platform.release()}; medians of {meta['runs']} run(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
