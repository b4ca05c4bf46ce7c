"""Figures of a scanner over many service directories: pickup of a new
one, memory and svstat over 100, idle CPU and wake-ups over 100 (all
implementations at once), start-up of 200."""

import os
import random
import statistics
import time
from pathlib import Path

from bench import proctree
from bench.impls import Impl
from bench.rig import Rig
from bench.worker import UP_FOR, ms

HUNDRED = 100


def _age(scan: Path) -> None:
    """Date the scan directory ten seconds back, as a scan directory at boot
    would be: runsvdir leaves a directory modified within the current
    second for its next check, a second later."""
    then = time.time() - 10
    os.utime(scan, (then, then))


def pickup(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    """Several scanners side by side, each on its own scan directory dated
    back as at boot; each gets one new directory, renamed in at a random
    moment of its scanner's first five seconds, so a scanner that polls is
    caught at every phase of its period and never just after a change
    (runsvdir looks again a second later at a directory it saw modified in
    the current second). Latency is counted from each rename."""
    rounds, width = (1, 6) if quick else (1, 12)
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
            samples += [ms(started[k][0] - renamed[k]) for k in renamed]
    return {"pickup": samples}


def _hundred(rig: Rig) -> tuple[list[Path], int, list[int]]:
    """A scanner over 100 services, all up and past djb's one-second sleep
    after a start, so every worker is idle: the service directories, the
    scanner's pid and the pids of the supervision processes (the scanner
    and everything below it that is not a service)."""
    impl = rig.impl
    scan = rig.top / "scan"
    scan.mkdir()
    dirs = [rig.service(f"s{i:03}", where=scan) for i in range(HUNDRED)]
    _age(scan)
    scanner = rig.start_scanner(scan, dirs)
    services = {pid for _, pid in rig.ann.wait_all({d.name for d in dirs}, timeout=30).values()}
    time.sleep(UP_FOR + 0.4)
    procs = proctree.tree(scanner, stop=services)
    if not impl.single and len(procs) <= HUNDRED:
        raise RuntimeError(f"{len(procs) - 1} supervisors for {HUNDRED} services")
    return dirs, scanner, procs


def hundred(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    """Memory of the supervision processes over 100 services, then svstat
    over all of them."""
    n = 5 if quick else 30
    out: dict[str, list[float]] = {}
    with Rig(impl) as rig:
        dirs, scanner, procs = _hundred(rig)
        pss = {p: proctree.pss_kib(p) for p in procs}
        out["pss"] = [sum(pss.values()) / HUNDRED]
        out["pss_scanner"] = [float(pss[scanner])]
        if not impl.single:
            out["pss_worker"] = [statistics.median(pss[p] for p in procs if p != scanner)]
        if impl.takes_many(impl.svstat):
            argv = impl.argv(impl.svstat, *dirs)
            out["svstat100"] = [ms(rig.client(argv)) for _ in range(n)]
    return out


def idle_seconds(quick: bool) -> float:
    return 2.0 if quick else 30.0


def idle(impls: list[Impl], quick: bool) -> dict[str, dict[str, list[float]] | Exception]:
    """CPU time and wake-ups of the supervision processes over 100 idle
    services, every implementation at once: idle processes do not get in
    each other's way, and the wait is paid once."""
    rigs: list[Rig] = []
    up: dict[str, tuple[int, list[int]]] = {}
    out: dict[str, dict[str, list[float]] | Exception] = {}
    try:
        for impl in impls:
            rigs.append(Rig(impl))
            try:
                _, scanner, procs = _hundred(rigs[-1])
            except Exception as e:  # the others can still be measured
                out[impl.name] = e
                continue
            up[impl.name] = (scanner, procs)
        every = [p for _, procs in up.values() for p in procs]
        cpu0 = {p: proctree.cpu_ns(p) for p in every}
        cs0 = {p: proctree.context_switches(p) for p in every}
        time.sleep(idle_seconds(quick))
        for impl in impls:
            if impl.name not in up:
                continue
            scanner, procs = up[impl.name]
            cs = {p: proctree.context_switches(p) - cs0[p] for p in procs}
            got = {"idle_cpu": [sum(proctree.cpu_ns(p) - cpu0[p] for p in procs) / 1e6],
                   "wakeups_scanner": [float(cs[scanner])]}
            if not impl.single:
                got["wakeups_workers"] = [float(sum(n for p, n in cs.items() if p != scanner))]
            out[impl.name] = got
    finally:
        for rig in rigs:
            rig.close()
    return out


def startup(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    """Scanner start to the last of 200 ./run running; the first one's
    start is kept too, which tells the scanner's own start-up from the
    time it takes per service. The CPU time the scanner and the workers
    spent meanwhile says where that time went: on 2 CPUs, a start-up that
    costs more than twice its wall time in CPU was bound by the CPUs."""
    n_services = 200
    out: dict[str, list[float]] = {"startup": [], "startup_first": [], "startup_cpu_scanner": []}
    for _ in range(1 if quick else 2):
        with Rig(impl) as rig:
            scan = rig.top / "scan"
            scan.mkdir()
            dirs = [rig.service(f"s{i:03}", where=scan) for i in range(n_services)]
            _age(scan)
            if impl.configure is not None:
                impl.configure(scan, dirs)
            t0 = time.perf_counter()
            scanner = rig.spawn(impl.argv(impl.scanner, scan))
            up = rig.ann.wait_all({d.name for d in dirs}, timeout=60)
            cpu = {p: proctree.cpu_ns(p) for p in
                   proctree.tree(scanner, stop={pid for _, pid in up.values()})}
            started = [t for t, _ in up.values()]
            out["startup"].append(ms(max(started) - t0))
            out["startup_first"].append(ms(min(started) - t0))
            out["startup_cpu_scanner"].append(cpu.pop(scanner) / 1e6)
            if not impl.single:
                # every process below the scanner that is not a service:
                # the workers, and dtd's forker, shared out over them
                out.setdefault("startup_cpu_worker", []).append(sum(cpu.values()) / 1e6 / n_services)
    return out
