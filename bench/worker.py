"""Figures of one supervisor on one service directory: restart, stop,
stop right after a start, and the clients' wall time. Services are dash
scripts that announce themselves (bench.announce) and exec a long sleep."""

import os
import signal
import statistics
import time

from bench.impls import Impl, daemontools
from bench.rig import Rig, sleep_until

# djb's supervise sleeps a second after each start and reads no command
# meanwhile; a service has to be up longer than that for the restart and stop
# figures to measure the supervisor rather than that sleep.
UP_FOR = 1.1
# A pause between two samples, so that the supervisor of the last one has
# finished its bookkeeping (status file, wait) before the next starts.
GAP = 0.02
# Services taken in turn, so that each has been up UP_FOR when its turn
# comes without the bench waiting that long between samples.
ROUND_ROBIN = 12


class Budget:
    """Enough samples: all that were asked for, or at least a few once the
    time allowed for one figure is spent (s6 and supervisord take a second
    per restart; thirty of them would not tell more than six)."""

    def __init__(self, quick: bool) -> None:
        self.start = time.monotonic()
        self.least, self.seconds = (3, 3.0) if quick else (6, 6.0)

    def spent(self, taken: int) -> bool:
        return taken >= self.least and time.monotonic() - self.start > self.seconds


def ms(seconds: float) -> float:
    return seconds * 1000.0


def can_supervise_one(impl: Impl) -> bool:
    return impl.can(impl.scanner if impl.worker is None else impl.worker)


def can_stop(impl: Impl) -> bool:
    return can_supervise_one(impl) and impl.can(impl.svc_down, impl.svc_up)


def restart(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 4 if quick else 30
    budget = Budget(quick)
    with Rig(impl) as rig:
        dirs = [rig.service(f"s{i}") for i in range(min(n, ROUND_ROBIN))]
        rig.start_workers(dirs)
        up = {d.name: rig.ann.wait(d.name) for d in dirs}
        samples: list[float] = []
        for i in range(n):
            if budget.spent(len(samples)):
                break
            name = dirs[i % len(dirs)].name
            started, pid = up[name]
            sleep_until(started + UP_FOR)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            up[name] = rig.ann.wait(name)
            samples.append(ms(up[name][0] - t0))
            time.sleep(GAP)
    return {"restart": samples}


def stop(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 4 if quick else 20
    budget = Budget(quick)
    with Rig(impl) as rig:
        dirs = [rig.service(f"s{i}") for i in range(min(n, ROUND_ROBIN))]
        rig.start_workers(dirs)
        up = {d.name: rig.ann.wait(d.name) for d in dirs}
        out: dict[str, list[float]] = {"stop": [], "start": []}
        # Turn about: through the client, then by writing the control byte
        # ourselves, which leaves the supervisor's own share.
        direct = "control" in impl.fifos
        if direct:
            out["stop_direct"] = []
        for i in range(2 * n if direct else n):
            if budget.spent(len(out["stop"])):
                break
            d = dirs[i % len(dirs)]
            started, pid = up[d.name]
            sleep_until(started + UP_FOR)
            if i % 2 == 0 or not direct:
                out["stop"].append(ms(rig.client_until_gone(impl.argv(impl.svc_down, d), pid)))
            else:
                out["stop_direct"].append(ms(rig.control_until_gone(d, b"d", pid)))
            time.sleep(GAP)
            # The start back up is a figure too: the service has been up
            # long enough that no supervisor holds it back.
            t0 = time.perf_counter()
            rig.client(impl.argv(impl.svc_up, d))
            up[d.name] = rig.ann.wait(d.name)
            out["start"].append(ms(up[d.name][0] - t0))
    return out


def stop_after_start(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 2 if quick else 4
    with Rig(impl) as rig:
        d = rig.service("s", down=True)
        rig.start_workers([d])
        rig.wait_worker(d)
        samples = []
        for _ in range(n):
            rig.client(impl.argv(impl.svc_up, d))
            _, pid = rig.ann.wait(d.name)
            samples.append(ms(rig.client_until_gone(impl.argv(impl.svc_down, d), pid)))
            time.sleep(GAP)
    return {"stop_after_start": samples}


def clients(impl: Impl, quick: bool, first: bool) -> dict[str, list[float]]:
    n = 5 if quick else 30
    calls = {"svc": impl.svc_up, "svstat": impl.svstat, "svok": impl.svok}
    out: dict[str, list[float]] = {}
    budget = Budget(quick)
    with Rig(impl) as rig:
        d = rig.service("s")
        rig.start_workers([d])
        started, _ = rig.ann.wait(d.name)
        sleep_until(started + UP_FOR)
        for i in range(n):
            if budget.spent(i):
                break
            for key, template in calls.items():
                if template is not None and impl.usable(template[0]):
                    out.setdefault(key, []).append(ms(rig.client(impl.argv(template, d))))
            if impl.python is not None:
                out.setdefault("python", []).append(ms(rig.client([str(impl.python), "-c", "pass"])))
    return out


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
            samples.append(ms(t1 - t0))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return statistics.median(samples)
