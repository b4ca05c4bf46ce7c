"""The fault suite's schedule: a mixed phase (root SIGKILLed every few
seconds, workers, loggers and writers killed, a stopped root, renames,
removals, a vanished scan directory, a full disk, garbage into every input),
a starved phase (the root's descriptor limit low), a flapping phase (services
whose run exits at once; the API's latency and the root's CPU measured),
then the dust settles, the root is stopped and every line is accounted for.
"""

import functools
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import faults
from .rig import Rig, control


@dataclass(frozen=True)
class Profile:
    name: str
    writers: int
    envdir: int  # of which run under envdir
    interval: float  # seconds between two lines of a writer
    mixed: float  # seconds of mixed faults
    root_kill: tuple[float, float]  # seconds between two SIGKILLs of the root
    fault_every: float  # seconds between two other faults
    stop_at: float  # into the mixed phase: SIGSTOP the root
    stop_for: float
    scan_at: float  # the scan directory removed, recreated empty, then back
    disk_at: float  # the log disk full...
    disk_for: float  # ...for this long
    doomed: int  # sleeper services removed with rm -rf while up
    starve_for: float  # seconds with a root that has no descriptors to spare
    late: int  # writers added while it is starved
    low_fds_root: int | None  # a root started under this limit (None: skipped)
    flappers: int
    flapping: float
    slowloris: int
    multilog_fuzz: int
    settle: float
    bus: bool
    logger_kill: bool  # SIGKILL loggers (whatever they had read is lost: see test_findings)
    starve_api: bool  # API clients while the root is out of descriptors
    seed: int = 7


FAST = Profile("fast", writers=10, envdir=2, interval=0.02, mixed=16.0, root_kill=(2.0, 3.5),
               fault_every=0.4, stop_at=5.0, stop_for=3.0, scan_at=9.0, disk_at=11.0,
               disk_for=3.0, doomed=2, starve_for=3.0, late=2, low_fds_root=None,
               flappers=40, flapping=6.0, slowloris=10, multilog_fuzz=8, settle=20.0,
               bus=False, logger_kill=True, starve_api=True)

FULL = Profile("full", writers=50, envdir=5, interval=0.05, mixed=100.0, root_kill=(3.0, 6.0),
               fault_every=0.5, stop_at=30.0, stop_for=10.0, scan_at=50.0, disk_at=65.0,
               disk_for=15.0, doomed=5, starve_for=12.0, late=5, low_fds_root=64,
               flappers=200, flapping=60.0, slowloris=50, multilog_fuzz=60, settle=60.0,
               bus=True, logger_kill=True, starve_api=True)


class Scenario:
    def __init__(self, rig: Rig, profile: Profile) -> None:
        self.rig = rig
        self.p = profile
        self.rnd = random.Random(profile.seed)
        self.busy: set[str] = set()  # writers a lasting fault holds
        self.quiet = False  # no root SIGKILL now (stopped, starved)
        self.timers: list[tuple[float, Callable[[], object]]] = []
        self.envdir_results: list[dict[str, object]] = []
        self.multilog_findings: list[dict[str, object]] = []
        self.flap: dict[str, Any] = {}
        self.t0 = time.monotonic()  # the start of the running phase: timers count from it
        self.starve: dict[str, Any] = {}

    # -- the timeline --------------------------------------------------------------

    def at(self, t: float, fn: Callable[[], object]) -> None:
        self.timers.append((t, fn))

    def run_for(self, seconds: float, random_faults: bool) -> None:
        """Fire the timers and, if asked, random faults for seconds; then
        wait for the timers still due (a service to bring back)."""
        start = self.t0 = time.monotonic()
        next_kill = start + self.rnd.uniform(*self.p.root_kill)
        next_fault = start
        while True:
            now = time.monotonic()
            self.rig.check_root()
            due = [(t, fn) for t, fn in self.timers if start + t <= now]
            for item in due:
                self.timers.remove(item)
                item[1]()
            if now - start >= seconds and not self.timers:
                break
            if random_faults and now - start < seconds:
                if now >= next_kill:
                    if not self.quiet:
                        faults.kill_root(self.rig)
                    next_kill = now + self.rnd.uniform(*self.p.root_kill)
                if now >= next_fault:
                    self.random_fault()
                    next_fault = now + self.rnd.expovariate(1 / self.p.fault_every)
            time.sleep(0.02)

    def free(self) -> list[str]:
        return [s for s in self.rig.writers if s not in self.busy]

    def random_fault(self) -> None:
        rig, rnd = self.rig, self.rnd
        sid = rnd.choice(self.free())
        kinds = ["worker", "worker", "logger KILL", "logger TERM", "logger TERM", "writer",
                 "rename", "exile", "control", "control any", "socket", "socket", "bus",
                 "envdir", "multilog", "root and worker", "forker"]
        kind = rnd.choice(kinds)
        if kind == "worker":
            faults.kill_worker(rig, rnd, sid)
        elif kind == "root and worker":
            if not self.quiet:
                faults.kill_root_and_worker(rig, sid)
        elif kind == "forker":
            faults.kill_forker(rig)
        elif kind == "logger KILL":
            if self.p.logger_kill:
                faults.kill_logger(rig, sid, signal.SIGKILL)
        elif kind == "logger TERM":
            faults.kill_logger(rig, sid, signal.SIGTERM)
        elif kind == "writer":
            faults.kill_writer(rig, sid)
        elif kind == "rename":
            faults.rename_service(rig, sid)
        elif kind == "exile":
            self.busy.add(sid)
            faults.exile_service(rig, sid)
            self.after(rnd.uniform(1, 4), lambda: self.release(sid, faults.bring_back))
        elif kind.startswith("control"):
            faults.garbage_control(rig, rnd, sid, kind == "control any", self.p.logger_kill)
        elif kind == "socket":
            faults.garbage_socket(rig, rnd, rig.writers)
        elif kind == "bus":
            if not self.quiet:  # a stopped root answers nobody: busctl would wait
                faults.garbage_bus(rig, rnd, sid)
        elif kind == "envdir":
            envs = [s for s in self.free() if (rig.paths[s] / "env").is_dir()]
            if envs:
                e = rnd.choice(envs)
                self.busy.add(e)
                self.envdir_results.append(faults.envdir_garbage(rig, rnd, e))
                self.after(2.0, lambda: self.release(e, faults.clean_envdir))
        elif kind == "multilog":
            self.multilog_findings += faults.garbage_multilog(rig, rnd, 2)

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        self.timers.append((time.monotonic() - self.t0 + delay, fn))

    def release(self, sid: str, fn: Callable[[Rig, str], None]) -> None:
        if not self.rig.scan.is_dir():  # the scan directory is away: later
            self.after(0.5, lambda: self.release(sid, fn))
            return
        fn(self.rig, sid)
        self.busy.discard(sid)

    # -- phases ------------------------------------------------------------------

    def setup(self) -> None:
        rig, p = self.rig, self.p
        for i in range(p.writers):
            rig.add_writer(f"w{i:02d}", envdir=i < p.envdir)
        for i in range(p.doomed):
            rig.add_sleeper(f"doomed{i}")
        rig.start_root()
        rig.phase = "setup"
        missing = rig.settle(60.0)
        assert not missing, f"not up at the start: {missing}"
        assert rig.wait_api(), "the API does not answer at the start"
        # sampled all along: what it answers while the root is killed,
        # stopped, starved, or busy with flapping services
        rig.start_sampling()

    def mixed(self) -> None:
        rig, p = self.rig, self.p
        rig.phase = "mixed"
        self.timers.clear()
        stopped: list[int] = []

        def stop() -> None:
            self.quiet = True
            stopped.append(faults.stop_root(rig))

        def cont() -> None:
            if stopped:
                faults.cont_root(rig, stopped.pop())
            self.quiet = False

        away: list[Any] = []
        self.at(p.stop_at, stop)
        self.at(p.stop_at + p.stop_for, cont)
        self.at(p.scan_at, lambda: away.append(faults.scan_away(rig)))
        self.at(p.scan_at + 1.0, lambda: faults.scan_recreated(rig))
        self.at(p.scan_at + 2.5, lambda: faults.scan_back(rig, away.pop()))
        for i in range(p.doomed):
            self.at(p.scan_at + 3 + i * 0.3, functools.partial(self.doomed_gone, i))
            self.at(p.scan_at + 5 + i * 0.3, functools.partial(self.doomed_again, i))
        if rig.mounted:
            self.at(p.disk_at, functools.partial(faults.fill_disk, rig))
            self.at(p.disk_at + p.disk_for, lambda: faults.free_disk(rig))
        slow = faults.Slowloris(rig, p.slowloris, 0.5)
        self.at(2.0, slow.start)
        self.at(p.mixed - 2.0, slow.stop)
        if p.multilog_fuzz:
            self.at(1.0, lambda: self.multilog_findings.extend(
                faults.garbage_multilog(rig, self.rnd, p.multilog_fuzz // 2)))
        self.run_for(p.mixed, random_faults=True)
        # the lasting faults are over: every writer is home again
        assert not self.busy, self.busy

    def doomed_gone(self, i: int) -> None:
        faults.remove_tree(self.rig, self.rig.scan / f"doomed{i}")

    def doomed_again(self, i: int) -> None:
        self.rig.add_sleeper(f"doomed{i}")
        self.rig.note("service directory recreated", f"doomed{i}")

    def starved(self) -> None:
        """The root with no descriptors to spare: new services, killed
        workers and API clients all need one."""
        rig, p = self.rig, self.p
        rig.phase = "starved"
        if not rig.wait_api():
            rig.findings.append("the API did not answer before the starved phase")
        pid = rig.root_pid()
        have = faults.open_fds(pid)
        ok = faults.prlimit(rig, pid, have + 4)
        self.starve = {"root_fds": have, "limit": have + 4, "prlimit": ok}
        held = faults.api_flood(rig, 20) if p.starve_api else []
        for i in range(p.late):
            rig.add_writer(f"late{i}")
        for sid in self.rnd.sample(rig.writers[:p.writers], 3):
            faults.kill_worker(rig, self.rnd, sid)
        self.timers.clear()
        self.run_for(p.starve_for, random_faults=False)
        if p.starve_api:
            self.starve["api_while_starved"] = faults.api_answers(rig, 3.0)
        for s in held:
            s.close()
        faults.prlimit(rig, pid, None)
        if p.low_fds_root is not None:
            # started under a low limit, soft and hard: it cannot raise it, so
            # an operator would start it again once the limit is fixed
            faults.kill_root(rig, low_fds=p.low_fds_root)
            self.run_for(5.0, random_faults=False)
            self.starve["low_root_alive"] = bool(rig.root_pid())
            faults.kill_root(rig)
        self.starve["api_after"] = rig.wait_api()

    def flapping(self) -> None:
        """Services whose run exits at once; the API sampled all along, the
        root's CPU time taken from /proc/PID/stat."""
        rig, p = self.rig, self.p
        rig.phase = "flap-setup"
        flappers = rig.top / "flappers"
        flappers.mkdir()
        for i in range(p.flappers):
            d = flappers / f"flap{i:03d}"
            d.mkdir()
            (d / "run").write_text("#!/bin/sh\nexit 0\n")
            (d / "run").chmod(0o755)
        assert rig.wait_api(), "the API does not answer before flapping"
        pid = rig.root_pid()
        # a quiet second for the baseline
        time.sleep(1.0)
        rig.phase = "flapping"
        cpu0, t0 = rig.cpu_ticks(pid), time.monotonic()
        for d in sorted(flappers.iterdir()):
            os.rename(d, rig.scan / d.name)
        rig.note("flapping services added", str(p.flappers))
        self.timers.clear()
        self.run_for(p.flapping, random_faults=False)
        cpu1, t1 = rig.cpu_ticks(pid), time.monotonic()
        rig.phase = "flap-teardown"
        same_root = rig.root_pid() == pid
        self.flap = {"cpu_seconds": (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK"),
                     "seconds": t1 - t0, "same_root": same_root}
        # out of the scan directory first, so that the root does not start
        # another worker for one that is told to exit
        for i in range(p.flappers):
            os.rename(rig.scan / f"flap{i:03d}", rig.trash / f"flap{i:03d}")
        for i in range(p.flappers):
            control(rig.trash / f"flap{i:03d}", b"dx")

    def finish(self) -> dict[str, Any]:
        rig, p = self.rig, self.p
        rig.phase = "settle"
        down = rig.settle(p.settle)
        stale = rig.api_disagrees(7.0)
        bus_ok = None
        if rig.bus is not None and rig.root_pid():
            bus_ok = faults.bus_answers(rig)
        rig.phase = "stop"
        rig.stop_sampling()
        if not rig.stop_root():
            rig.drain_by_hand()
        return {"down_after_settle": down, "bus_answers_after": bus_ok, "api_stale": stale}
