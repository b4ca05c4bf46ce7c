"""The fault suite (issue 7): writers that number their lines, loggers, a
root that is killed, stopped, starved and fed garbage; then every line, every
./run and every service is accounted for. ``make chaos`` runs the full
profile (a few minutes); the fast profile runs in ``make test``.

CHAOS_REPORT=PATH writes the JSON report there (the full profile writes it
to bench/results/chaos-*.json otherwise); CHAOS_KEEP=DIR keeps the roots'
output, the fault timeline, the logs and the ledger there for a post-mortem.
Profiles and phases: scenario.py; what is counted and how: ledger.py."""

from pathlib import Path
from typing import Any

import pytest

from . import report
from .rig import Rig
from .scenario import FAST, FULL, Profile, Scenario

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def run_suite(profile: Profile) -> dict[str, Any]:
    rig = Rig(profile.interval, profile.bus)
    try:
        sc = Scenario(rig, profile)
        sc.setup()
        sc.mixed()
        sc.starved()
        sc.flapping()
        end = sc.finish()
        acc = rig.account()
        envdir_diff = [envdir_difference(r) for r in sc.envdir_results
                       if "ref" in r and r["ours"] != r["ref"]]
        return report.build(rig, profile.name, acc, end, sc.flap, sc.starve, {
            "envdir_garbage_runs": len(sc.envdir_results),
            "envdir_differences": envdir_diff,
            "multilog_garbage_differences": sc.multilog_findings,
            "multilog_tracebacks": sum(1 for f in sc.multilog_findings if f["traceback"]),
        })
    finally:
        rig.close()


def envdir_difference(r: dict[str, Any]) -> str:
    (oc, ov, oe), (rc, rv, re_) = r["ours"], r["ref"]
    return (f"{r['kind']}: exit {oc} (reference {rc}); only ours {sorted(set(ov) - set(rv))!r:.200}; "
            f"only the reference's {sorted(set(rv) - set(ov))!r:.200}; stderr {oe!r:.100} "
            f"(reference {re_!r:.100})")


def check(rep: dict[str, Any]) -> None:
    bad = {k: rep["counts"][k] for k in report.MUST_BE_ZERO if rep["counts"][k]}
    if rep["multilog_tracebacks"]:
        bad["multilog_tracebacks"] = rep["multilog_tracebacks"]
    assert not bad, f"not zero: {bad}\n{report.table(rep)}"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_chaos_fast() -> None:
    rep = run_suite(FAST)
    report.write(rep, None)
    check(rep)


@pytest.mark.chaos
@pytest.mark.timeout(1200)
def test_chaos_full(capsys: pytest.CaptureFixture[str]) -> None:
    rep = run_suite(FULL)
    path = report.write(rep, RESULTS)
    with capsys.disabled():
        print("\n" + report.table(rep) + f"\n\nJSON: {path}\n")
    check(rep)
