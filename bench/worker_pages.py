"""Where does a worker's memory go? A page-level profile of a running dtd.

The memory-per-service figure is what each forked worker stops sharing with
the forker it came from. This reads the page frames (/proc/PID/pagemap;
root only) of the forker and of every worker it forked, mapping by mapping,
and sorts each worker page into:

- shared: the same frame as the forker's, costing 1/N;
- written by the worker: a frame no other process of the tree has;
- left behind by the forker: a frame shared by workers but not the forker
  any more, because the forker wrote that page after forking them.

    python -m bench.worker_pages FORKER_PID
"""

import collections
import os
import struct
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def maps(pid: int) -> list[tuple[int, int, str]]:
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[5] if len(parts) > 5 else "[anon]"))
    return out


def frames(pid: int) -> dict[int, tuple[int, str]]:
    """Present pages of pid: address -> (frame, mapping)."""
    out = {}
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        for lo, hi, name in maps(pid):
            if name == "[vsyscall]":
                continue
            f.seek(lo // PAGE * 8)
            data = f.read((hi - lo) // PAGE * 8)
            for i, e in enumerate(struct.unpack(f"{len(data) // 8}Q", data)):
                # bit 63: present; bits 0-54: frame number (root only)
                if e >> 63:
                    out[lo + i * PAGE] = (e & ((1 << 55) - 1), name)
    return out


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def profile(forker: int) -> dict[str, collections.Counter[str]]:
    parent = frames(forker)
    workers = [p for p in children(forker) if open(f"/proc/{p}/comm").read().strip() == "supervise"]
    pages = {w: frames(w) for w in workers}
    users: collections.Counter[int] = collections.Counter()
    for fr in pages.values():
        users.update(f for f, _ in fr.values())
    kinds: dict[str, collections.Counter[str]] = {
        "shared with the forker": collections.Counter(),
        "written by the worker": collections.Counter(),
        "left behind by the forker": collections.Counter(),
    }
    for w, fr in pages.items():
        for addr, (f, name) in fr.items():
            if parent.get(addr, (None,))[0] == f:
                kind = "shared with the forker"
            elif users[f] == 1:
                kind = "written by the worker"
            else:
                kind = "left behind by the forker"
            kinds[kind][name] += 1
    n = max(1, len(workers))
    print(f"{len(workers)} workers of forker {forker}; pages of {PAGE // 1024} KiB per worker:")
    for kind, counts in kinds.items():
        print(f"  {kind}: {sum(counts.values()) / n:.1f} pages")
        for name, c in counts.most_common(5):
            print(f"    {c / n:7.1f}  {name}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.worker_pages FORKER_PID", file=sys.stderr)
        return 100
    profile(int(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
