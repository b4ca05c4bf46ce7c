"""Rows to one markdown table, with dtd's ratio to the best peer and whether
it meets its target."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.impls import ORDER

OURS = "dtd"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "":
        text = f"{value:.0f}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: set[str] = set()
    for row in rows:
        seen.update(row["results"])
    return [n for n in ORDER if n in seen] + sorted(seen - set(ORDER))


def best_peer(row: Mapping[str, Any]) -> float | None:
    peers: list[float] = [v for k, v in row["results"].items() if k != OURS and v is not None]
    if not peers:
        return None
    return max(peers) if row.get("better") == "higher" else min(peers)


def ratio(row: Mapping[str, Any]) -> str:
    ours = row["results"].get(OURS)
    best = best_peer(row)
    if ours is None or best is None or best == 0:
        return ""
    r = ours / best
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def verdict(row: Mapping[str, Any]) -> str:
    ours = row["results"].get(OURS)
    limit = row.get("limit")
    if ours is None or limit is None:
        return ""
    met = ours >= limit if row.get("better") == "higher" else ours <= limit
    return "yes" if met else "**no**"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    names = columns(rows)
    head = ["figure", *names]
    if OURS in names:
        head += ["dtd / best peer", "dtd target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["figure"]] + [fmt(row["results"].get(n), row["unit"]) for n in names]
        if OURS in names:
            cells += [ratio(row), row.get("target", ""), verdict(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
