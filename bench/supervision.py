"""The supervision figures of issue 2, measured the same way for every
implementation, and the runs that put them side by side: bench.worker has
the figures of one supervisor on one directory, bench.scanner those of a
scanner over many."""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import scanner, worker
from bench.impls import Impl


@dataclass(frozen=True)
class Row:
    key: str
    figure: str
    unit: str
    target: str
    limit: float | None


Measure = Callable[[Impl, bool, bool], dict[str, list[float]]]
Joint = Callable[[list[Impl], bool], dict[str, dict[str, list[float]] | Exception]]


@dataclass(frozen=True)
class Figure:
    name: str
    rows: tuple[Row, ...]
    needs: Callable[[Impl], bool]
    # One implementation at a time, in every run...
    measure: Measure | None = None
    # ...or all of them together, in the first run only.
    joint: Joint | None = None


def _scans(impl: Impl) -> bool:
    return impl.can(impl.scanner)


FIGURES = (
    Figure("restart", (Row("restart", "restart after the service is SIGKILLed (up > 1 s)", "ms",
                           "<= 5 ms", 5),), worker.can_supervise_one, worker.restart),
    Figure("stop", (Row("stop", "`svc -d` -> process gone, including the client", "ms",
                        "<= 20 ms", 20),
                    Row("stop_direct", "`d` written into supervise/control -> gone (no client)", "ms",
                        "", None),
                    Row("start", "`svc -u` -> ./run running, including the client", "ms", "", None)),
           worker.can_stop, worker.stop),
    Figure("stop_after_start", (Row("stop_after_start", "`svc -d` right after a start -> gone", "ms",
                                    "<= 20 ms", 20),), worker.can_stop, worker.stop_after_start),
    Figure("clients", (Row("svc", "`svc` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("svstat", "`svstat` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("svok", "`svok` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("python", "bare `python -c pass` start-up (the floor under a client)", "ms",
                           "", None)),
           worker.can_supervise_one, worker.clients),
    Figure("pickup", (Row("pickup", "new service directory -> running", "ms", "<= 100 ms", 100),),
           lambda i: i.rescans and _scans(i), scanner.pickup),
    Figure("hundred", (Row("pss", "memory (PSS) of the supervision processes per service, 100 services",
                           "KiB", "<= 1280 KiB", 1280),
                       Row("pss_scanner", "PSS of the scanner, 100 services", "KiB", "", None),
                       Row("pss_worker", "PSS of one worker (median), 100 services", "KiB", "", None),
                       Row("svstat100", "`svstat` over 100 directories, wall", "ms", "<= 20 ms", 20)),
           _scans, scanner.hundred),
    Figure("idle", (Row("idle_cpu", "idle CPU of all supervision processes, 100 services, {idle}",
                        "ms", "<= 5 ms", 5),
                    Row("wakeups_workers", "wake-ups of the 100 workers in {idle}", "", "0", 0),
                    Row("wakeups_scanner", "wake-ups of the scanner in {idle}", "", "", None)),
           _scans, joint=scanner.idle),
    Figure("startup", (Row("startup", "200 services: scanner start -> all running", "ms",
                           "<= 500 ms", 500),
                       Row("startup_first", "200 services: scanner start -> the first running", "ms",
                           "", None),
                       Row("startup_cpu_scanner", "200 services: CPU time of the scanner until all run",
                           "ms", "", None),
                       Row("startup_cpu_worker", "200 services: CPU time per service of the "
                           "supervisors below the scanner until all run", "ms", "", None)),
           _scans, scanner.startup),
)


def run(quick: bool, impls: list[Impl], only: set[str] | None = None, runs: int | None = None,
        log: Callable[[str], None] = lambda s: None) -> list[dict[str, object]]:
    """Every figure for every implementation, `runs` times over (three in
    full mode, one in quick); the implementations take turns in a rotating
    order so that none is always measured first. A row's result for an
    implementation is the median over runs of each run's median."""
    runs = runs or (1 if quick else 3)
    figures = [f for f in FIGURES if only is None or f.name in only]
    per_run: dict[str, dict[str, list[float]]] = {}
    samples: dict[str, dict[str, list[list[float]]]] = {}
    errors: dict[str, dict[str, str]] = {}

    def record(fig: Figure, impl: Impl, got: dict[str, list[float]] | Exception, took: str) -> None:
        if isinstance(got, Exception):
            why = "; ".join([f"{type(got).__name__}: {got}", *getattr(got, "__notes__", [])])
            errors.setdefault(fig.name, {})[impl.name] = why
            log(f"{took}: {fig.name}: {impl.name}: failed: {why}")
            return
        for key, values in got.items():
            per_run.setdefault(key, {}).setdefault(impl.name, []).append(statistics.median(values))
            samples.setdefault(key, {}).setdefault(impl.name, []).append(values)

    for r in range(runs):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for fig in figures:
            chosen = [i for i in order if fig.needs(i)]
            t0 = time.monotonic()
            if fig.joint is not None:
                if r == 0:
                    try:
                        results = fig.joint(chosen, quick)
                    except Exception as e:
                        results = {i.name: e for i in chosen}
                    for impl in chosen:
                        record(fig, impl, results.get(impl.name, RuntimeError("not measured")),
                               f"run {r + 1}/{runs}")
                    log(f"run {r + 1}/{runs}: {fig.name}: all: {time.monotonic() - t0:.1f} s")
                continue
            assert fig.measure is not None
            for impl in chosen:
                t0 = time.monotonic()
                got: dict[str, list[float]] | Exception
                try:
                    got = fig.measure(impl, quick, r == 0)
                except Exception as e:  # one broken implementation must not sink the table
                    got = e
                record(fig, impl, got, f"run {r + 1}/{runs}")
                log(f"run {r + 1}/{runs}: {fig.name}: {impl.name}: {time.monotonic() - t0:.1f} s")
    idle = f"{scanner.idle_seconds(quick):.0f} s"
    rows: list[dict[str, object]] = []
    for fig in figures:
        for row in fig.rows:
            runs_of = per_run.get(row.key, {})
            rows.append({
                "figure": row.figure.format(idle=idle),
                "unit": row.unit,
                "results": {i.name: (statistics.median(runs_of[i.name]) if i.name in runs_of else None)
                            for i in impls},
                "target": row.target,
                "limit": row.limit,
                "better": "lower",
                "runs": runs_of,
                "samples": samples.get(row.key, {}),
                "errors": errors.get(fig.name, {}),
            })
    return rows
