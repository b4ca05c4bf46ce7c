"""The supervision figures of issue 2, measured the same way for every
implementation: a worker on one directory, the clients, and a scanner over
many. Services are dash scripts that announce themselves (bench.announce)
and exec a long sleep."""

import os
import random
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import proctree
from bench.impls import Impl, daemontools
from bench.rig import Rig, sleep_until

# djb's supervise sleeps a second after each start and reads no command
# meanwhile; a service has to be up longer than that for the restart and stop
# figures to measure the supervisor rather than that sleep.
UP_FOR = 1.1
# A pause between two samples, so that the supervisor of the last one has
# finished its bookkeeping (status file, wait) before the next starts.
GAP = 0.02
ROUND_ROBIN = 12


@dataclass(frozen=True)
class Row:
    key: str
    figure: str
    unit: str
    target: str
    limit: float | None


@dataclass(frozen=True)
class Figure:
    name: str
    rows: tuple[Row, ...]
    measure: Callable[[Impl, bool, bool], dict[str, list[float]]]
    needs: Callable[[Impl], bool]


def _age(scan: Path) -> None:
    """Date the scan directory ten seconds back, as a scan directory at boot
    would be: runsvdir leaves a directory modified within the current
    second for its next check, a second later."""
    then = time.time() - 10
    os.utime(scan, (then, then))


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def restart(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 4 if quick else 30
    with Rig(impl) as rig:
        dirs = [rig.service(f"s{i}") for i in range(min(n, ROUND_ROBIN))]
        rig.start_workers(dirs)
        up = {d.name: rig.ann.wait(d.name) for d in dirs}
        samples = []
        for i in range(n):
            name = dirs[i % len(dirs)].name
            started, pid = up[name]
            sleep_until(started + UP_FOR)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            up[name] = rig.ann.wait(name)
            samples.append(_ms(up[name][0] - t0))
            time.sleep(GAP)
    return {"restart": samples}


def stop(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 4 if quick else 30
    with Rig(impl) as rig:
        dirs = [rig.service(f"s{i}") for i in range(min(n, ROUND_ROBIN))]
        rig.start_workers(dirs)
        up = {d.name: rig.ann.wait(d.name) for d in dirs}
        out: dict[str, list[float]] = {"stop": []}
        # Turn about: through the client, then by writing the control byte
        # ourselves, which leaves the supervisor's own share.
        direct = "control" in impl.fifos
        if direct:
            out["stop_direct"] = []
        for i in range(2 * n if direct else n):
            d = dirs[i % len(dirs)]
            started, pid = up[d.name]
            sleep_until(started + UP_FOR)
            if i % 2 == 0 or not direct:
                out["stop"].append(_ms(rig.client_until_gone(impl.argv(impl.svc_down, d), pid)))
            else:
                out["stop_direct"].append(_ms(rig.control_until_gone(d, b"d", pid)))
            time.sleep(GAP)
            rig.client(impl.argv(impl.svc_up, d))
            up[d.name] = rig.ann.wait(d.name)
    return out


def stop_after_start(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 2 if quick else 5
    with Rig(impl) as rig:
        d = rig.service("s", down=True)
        rig.start_workers([d])
        rig.wait_worker(d)
        samples = []
        for _ in range(n):
            rig.client(impl.argv(impl.svc_up, d))
            _, pid = rig.ann.wait(d.name)
            samples.append(_ms(rig.client_until_gone(impl.argv(impl.svc_down, d), pid)))
            time.sleep(GAP)
    return {"stop_after_start": samples}


def clients(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 5 if quick else 30
    calls = {"svc": impl.svc_up, "svstat": impl.svstat, "svok": impl.svok}
    out: dict[str, list[float]] = {}
    with Rig(impl) as rig:
        d = rig.service("s")
        rig.start_workers([d])
        started, _ = rig.ann.wait(d.name)
        sleep_until(started + UP_FOR)
        for _ in range(n):
            for key, template in calls.items():
                if template is not None and impl.usable(template[0]):
                    out.setdefault(key, []).append(_ms(rig.client(impl.argv(template, d))))
            if impl.python is not None:
                out.setdefault("python", []).append(_ms(rig.client([str(impl.python), "-c", "pass"])))
    return out


def pickup(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    """Several scanners side by side, each on its own scan directory dated
    back as at boot; each gets one new directory, renamed in at a random
    moment of its scanner's first five seconds, so a scanner that polls is
    caught at every phase of its period and never just after a change
    (runsvdir looks again a second later at a directory it saw modified in
    the current second). Latency is counted from each rename."""
    rounds, width = (1, 6) if quick else (2, 10)
    rng = random.Random()  # a fresh phase in every run
    samples = []
    for _ in range(rounds):
        with Rig(impl) as rig:
            stage = rig.top / "stage"
            stage.mkdir()
            scans = []
            for j in range(width):
                scan = rig.top / f"scan{j}"
                scan.mkdir()
                rig.service(f"sentinel{j}", where=scan)
                rig.service(f"new{j}", where=stage)
                _age(scan)
                scans.append(scan)
            for scan in scans:
                rig.spawn(impl.argv(impl.scanner, scan))
            # A sentinel's start shows that its scanner has made its first scan.
            rig.ann.wait_all({f"sentinel{j}" for j in range(width)}, timeout=15)
            base = time.perf_counter()
            renamed: dict[str, float] = {}
            for due, j in sorted((base + rng.uniform(0.5, 5.5), j) for j in range(width)):
                while (left := due - time.perf_counter()) > 0:
                    rig.ann.poll(left)
                renamed[f"new{j}"] = time.perf_counter()
                os.rename(stage / f"new{j}", scans[j] / f"new{j}")
            started = rig.ann.wait_all(set(renamed), timeout=15)
            samples += [_ms(started[k][0] - renamed[k]) for k in renamed]
    return {"pickup": samples}


def hundred(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    """Memory, idle CPU and wake-ups of the supervision processes (the
    scanner and everything below it that is not a service) over 100
    services, then svstat over all of them."""
    n_services = 100
    idle = (2.0 if quick else 30.0) if first else 0.0
    n = 5 if quick else 30
    out: dict[str, list[float]] = {}
    with Rig(impl) as rig:
        scan = rig.top / "scan"
        scan.mkdir()
        dirs = [rig.service(f"s{i:03}", where=scan) for i in range(n_services)]
        _age(scan)
        scanner = rig.start_scanner(scan, dirs)
        services = {pid for _, pid in rig.ann.wait_all({d.name for d in dirs}, timeout=30).values()}
        # Past djb's one-second sleep after each start: every worker idle.
        time.sleep(UP_FOR + 0.4)
        procs = proctree.tree(scanner, stop=services)
        workers = [p for p in procs if p != scanner]
        if not impl.single and len(workers) < n_services:
            raise RuntimeError(f"{len(workers)} supervisors for {n_services} services")
        pss = {p: proctree.pss_kib(p) for p in procs}
        out["pss"] = [sum(pss.values()) / n_services]
        out["pss_scanner"] = [float(pss[scanner])]
        if not impl.single:
            out["pss_worker"] = [statistics.median(pss[p] for p in workers)]
        if idle:
            cpu0 = {p: proctree.cpu_ns(p) for p in procs}
            cs0 = {p: proctree.context_switches(p) for p in procs}
            time.sleep(idle)
            cpu = sum(proctree.cpu_ns(p) - cpu0[p] for p in procs)
            cs = {p: proctree.context_switches(p) - cs0[p] for p in procs}
            out["idle_cpu"] = [cpu / 1e6]
            if not impl.single:
                out["wakeups_workers"] = [float(sum(cs[p] for p in workers))]
            out["wakeups_scanner"] = [float(cs[scanner])]
        if impl.takes_many(impl.svstat):
            argv = impl.argv(impl.svstat, *dirs)
            out["svstat100"] = [_ms(rig.client(argv)) for _ in range(n)]
    return out


def startup(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n_services = 200
    samples = []
    for _ in range(1 if quick else 3):
        with Rig(impl) as rig:
            scan = rig.top / "scan"
            scan.mkdir()
            dirs = [rig.service(f"s{i:03}", where=scan) for i in range(n_services)]
            names = {d.name for d in dirs}
            _age(scan)
            if impl.configure is not None:
                impl.configure(scan, dirs)
            t0 = time.perf_counter()
            rig.spawn(impl.argv(impl.scanner, scan))
            started = rig.ann.wait_all(names, timeout=60)
            samples.append(_ms(max(t for t, _ in started.values()) - t0))
    return {"startup": samples}


def baseline(n: int = 20) -> float:
    """Milliseconds from the bench spawning a service's ./run itself to its
    announcement: the part of every start figure that is dash and the FIFO,
    not the supervisor."""
    samples = []
    with Rig(daemontools()) as rig:
        d = rig.service("direct")
        for _ in range(n):
            t0 = time.perf_counter()
            pid = rig.spawn([str(d / "run")])
            t1, _ = rig.ann.wait(d.name)
            samples.append(_ms(t1 - t0))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return statistics.median(samples)


def _one_dir(impl: Impl) -> bool:
    return impl.can(impl.scanner if impl.worker is None else impl.worker)


FIGURES = (
    Figure("restart", (Row("restart", "restart after the service is SIGKILLed (up > 1 s)", "ms",
                           "<= 5 ms", 5),), restart, _one_dir),
    Figure("stop", (Row("stop", "`svc -d` -> process gone, including the client", "ms",
                        "<= 20 ms", 20),
                    Row("stop_direct", "`d` written into supervise/control -> gone (no client)", "ms",
                        "", None)), stop,
           lambda i: _one_dir(i) and i.can(i.svc_down, i.svc_up)),
    Figure("stop_after_start", (Row("stop_after_start", "`svc -d` right after a start -> gone", "ms",
                                    "<= 20 ms", 20),), stop_after_start,
           lambda i: _one_dir(i) and i.can(i.svc_down, i.svc_up)),
    Figure("clients", (Row("svc", "`svc` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("svstat", "`svstat` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("svok", "`svok` wall time, one directory", "ms", "<= 15 ms", 15),
                       Row("python", "bare `python -c pass` start-up (the floor under a client)", "ms",
                           "", None)),
           clients, _one_dir),
    Figure("pickup", (Row("pickup", "new service directory -> running", "ms", "<= 100 ms", 100),),
           pickup, lambda i: i.rescans and i.can(i.scanner)),
    Figure("hundred", (Row("pss", "memory (PSS) of the supervision processes per service, 100 services",
                           "KiB", "<= 1280 KiB", 1280),
                       Row("pss_scanner", "PSS of the scanner, 100 services", "KiB", "", None),
                       Row("pss_worker", "PSS of one worker (median), 100 services", "KiB", "", None),
                       Row("idle_cpu", "idle CPU of all supervision processes, 100 services, {idle}",
                           "ms", "<= 5 ms", 5),
                       Row("wakeups_workers", "wake-ups of the 100 workers in {idle}", "",
                           "0", 0),
                       Row("wakeups_scanner", "wake-ups of the scanner in {idle}", "", "", None),
                       Row("svstat100", "`svstat` over 100 directories, wall", "ms", "<= 20 ms", 20)),
           hundred, lambda i: i.can(i.scanner)),
    Figure("startup", (Row("startup", "200 services: scanner start -> all running", "ms",
                           "<= 500 ms", 500),), startup, lambda i: i.can(i.scanner)),
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
    for r in range(runs):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for fig in figures:
            for impl in order:
                if not fig.needs(impl):
                    continue
                t0 = time.monotonic()
                try:
                    got = fig.measure(impl, quick, r == 0)
                except Exception as e:  # one broken implementation must not sink the table
                    errors.setdefault(fig.name, {})[impl.name] = f"{type(e).__name__}: {e}"
                    log(f"run {r + 1}/{runs}: {fig.name}: {impl.name}: failed: {type(e).__name__}: {e}")
                    continue
                log(f"run {r + 1}/{runs}: {fig.name}: {impl.name}: {time.monotonic() - t0:.1f} s")
                for key, values in got.items():
                    per_run.setdefault(key, {}).setdefault(impl.name, []).append(statistics.median(values))
                    samples.setdefault(key, {}).setdefault(impl.name, []).append(values)
    idle = "2 s" if quick else "30 s"
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
