"""The fault suite's report: the must-be-zero counts, the API's latency and
the root's CPU while services flap, where the lost lines were lost, and
what was found on the way; as a markdown table and as JSON."""

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from .ledger import Account, Gap
from .rig import Rig

# the list, and an API that shows services otherwise than their
# status files once the dust has settled (fixed in 4334c08, kept)
MUST_BE_ZERO = ("lost", "duplicated", "out_of_order", "malformed", "double_run",
                "down_after_settle", "api_stale_after_settle", "root_crashes")
SLACK = 0.5  # seconds around a gap in which a fault counts as its neighbour


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def attribute(gap: Gap, events: list[tuple[float, str, str]], writers: set[str]) -> str:
    """The faults next to a gap: those aimed at its service, or at no one
    service (the root, the disk)."""
    if gap.before is None and gap.after is None:
        # no line of the incarnation arrived: from a little before its last
        # record to a little after
        lo, hi = gap.recorded - 5.0, gap.recorded + SLACK
    else:
        lo = (gap.before if gap.before is not None else (gap.after or 0.0) - 5.0) - SLACK
        hi = (gap.after if gap.after is not None else (gap.before or 0.0) + 5.0) + SLACK
    near = sorted({kind for t, kind, target in events
                   if lo <= t <= hi and (target == gap.sid or target not in writers)})
    return ", ".join(near) if near else "no fault near it"


def build(rig: Rig, profile: str, acc: Account, end: dict[str, Any], flap: dict[str, Any],
          starve: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    lat = [s.latency * 1000 for s in rig.samples if s.phase == "flapping" and s.latency >= 0]
    failed = [s.error for s in rig.samples if s.phase == "flapping" and s.latency < 0]
    base = [s.latency * 1000 for s in rig.samples if s.phase == "flap-setup" and s.latency >= 0]
    tracebacks = rig.tracebacks()
    by_fault: dict[str, int] = {}
    for g in acc.gaps:
        k = attribute(g, rig.events, set(rig.writers))
        by_fault[k] = by_fault.get(k, 0) + g.last - g.first + 1
    faults: dict[str, int] = {}
    for _, kind, _ in rig.events:
        faults[kind] = faults.get(kind, 0) + 1
    epipe = []
    if (rig.ledger / "epipe").exists():
        for rec in (rig.ledger / "epipe").read_text().splitlines():
            sid, _, _, at = rec.split()
            near = sorted({kind for t, kind, target in rig.events
                           if float(at) - 5 <= t <= float(at) + SLACK
                           and (target == sid or target not in rig.writers)})
            epipe.append(f"{sid} at {float(at):.3f}: after {', '.join(near) or 'no fault'}")
    counts = {
        "lost": acc.lost,
        "duplicated": acc.duplicated,
        "out_of_order": acc.out_of_order,
        "malformed": acc.malformed,
        "double_run": len(rig_violations(rig)),
        "down_after_settle": len(end["down_after_settle"]),
        "api_stale_after_settle": len(end["api_stale"]),
        "root_crashes": len(rig.crashes) + len(tracebacks),
    }
    return {
        "profile": profile,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": counts,
        "lines": {"written": acc.written, "seen": acc.seen, "unrecorded_tail": acc.unrecorded,
                  "torn_u_tails": acc.torn,
                  "incarnations": acc.incarnations},
        "lost_by_fault": by_fault,
        "gaps": [vars(g) for g in acc.gaps[:50]],
        "malformed_samples": acc.samples,
        "down_after_settle": end["down_after_settle"],
        "api_stale_after_settle": end["api_stale"],
        "crashes": [vars(c) for c in rig.crashes],
        "tracebacks": len(tracebacks),
        "traceback_kinds": kinds(tracebacks),
        "violations": rig_violations(rig)[:20],
        "no_reader_epipe": epipe,
        "api_flapping_ms": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                            "max": max(lat, default=float("nan")), "samples": len(lat),
                            "failed": len(failed), "quiet_p50": percentile(base, 50)},
        "api_by_phase_ms": by_phase(rig),
        "bus_answers_after": end.get("bus_answers_after"),
        "root_cpu_flapping": {**flap, "percent_of_a_core": 100 * flap.get("cpu_seconds", 0)
                              / flap["seconds"] if flap.get("seconds") else float("nan")},
        "starved": starve,
        "roots_started": len(rig.roots),
        "faults": faults,
        "logs_on_tmpfs": rig.mounted or rig.tmpfs,
        "findings": rig.findings,
        **extra,
    }


def by_phase(rig: Rig) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for phase in dict.fromkeys(s.phase for s in rig.samples):
        ok = [s.latency * 1000 for s in rig.samples if s.phase == phase and s.latency >= 0]
        failed = [s.error for s in rig.samples if s.phase == phase and s.latency < 0]
        out[phase] = {"p50": percentile(ok, 50), "p99": percentile(ok, 99),
                      "max": max(ok, default=float("nan")), "answered": len(ok),
                      "failed": len(failed)}
    return out


def kinds(tracebacks: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for t in tracebacks:
        counts[t] = counts.get(t, 0) + 1
    return [f"{n} x {t}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def rig_violations(rig: Rig) -> list[str]:
    path = rig.ledger / "violations"
    return path.read_text().splitlines() if path.exists() else []


def table(rep: dict[str, Any]) -> str:
    c = rep["counts"]
    api = rep["api_flapping_ms"]
    cpu = rep["root_cpu_flapping"]
    rows = [
        ("lines lost", c["lost"]),
        ("lines duplicated", c["duplicated"]),
        ("lines out of order", c["out_of_order"]),
        ("lines malformed", c["malformed"]),
        ("moments with two copies of a ./run", c["double_run"]),
        ("services down after settle", c["down_after_settle"]),
        ("services the API shows otherwise than their status files", c["api_stale_after_settle"]),
        ("root crashes (exits not asked for, tracebacks)",
         f"{c['root_crashes']} ({len(rep['crashes'])} exits, {rep['tracebacks']} tracebacks)"),
        ("API p50 / p99 while flapping (ms)",
         f"{api['p50']:.1f} / {api['p99']:.1f} ({api['samples']} samples, {api['failed']} failed)"),
        ("root CPU while flapping",
         (f"{cpu.get('percent_of_a_core', float('nan')):.1f} % of a core "
          f"({cpu.get('cpu_seconds', 0):.2f} s in {cpu.get('seconds', 0):.0f} s)")),
        ("lines written / seen", f"{rep['lines']['written']} / {rep['lines']['seen']}"),
        ("partial last lines of .u files (a killed multilog's)", rep["lines"]["torn_u_tails"]),
        ("roots started (killed and restarted)", rep["roots_started"]),
        ("writes that found no reader (EPIPE)", len(rep["no_reader_epipe"])),
        ("full log disk", "yes (tmpfs)" if rep["logs_on_tmpfs"] is True
         else f"skipped: {rep['logs_on_tmpfs']}"),
    ]
    out = [f"chaos ({rep['profile']}), {rep['when']}", "", "| what | count |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    if rep["lost_by_fault"]:
        out += ["", "lost lines by the faults next to them:"]
        out += [f"  {n:6d}  {k}" for k, n in sorted(rep["lost_by_fault"].items(), key=lambda kv: -kv[1])]
    for key in ("crashes", "traceback_kinds", "no_reader_epipe", "down_after_settle",
                "api_stale_after_settle", "malformed_samples", "findings",
                "envdir_differences", "multilog_garbage_differences"):
        if rep.get(key):
            out += ["", f"{key}:"] + [f"  {x}" for x in rep[key][:10]]
    return "\n".join(out)


def write(rep: dict[str, Any], default_dir: Path | None) -> Path | None:
    """To $CHAOS_REPORT, else into default_dir (None: not written)."""
    path = os.environ.get("CHAOS_REPORT")
    if path:
        target = Path(path)
    elif default_dir is not None:
        target = default_dir / f"chaos-{rep['when'].replace('-', '').replace(':', '')}.json"
    else:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(rep, indent=1, default=str) + "\n")
    return target
