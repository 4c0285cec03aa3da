"""Benchmark: podshim's exact hint merge on the kubelet's worst case (run: python tests/bench/merge.py).

Every provider lists every NUMA subset that fits its request, as the kubelet's CPU manager does
(2^N − 1 masks when everything fits). Scenarios:

* ``fit-1``: each request fits on any one node (all nodes free) — the preferred hints agree;
* ``split-2``: each request needs two nodes' worth and provider p has free capacity only on its
  own three nodes, so the preferred hints never agree and the non-preferred search runs;
* ``busy-2`` and ``half``: nodes of 4 CPU slots, each provider sees its own random 1-4 free slots
  per node and needs two nodes' worth (8) or half the machine (2N); the fitting masks have
  hundreds to thousands of minimal masks (``minimal/prov``), as the CPU manager's do on a busy
  machine, and the preferred hints rarely agree. ``half`` runs up to 16 nodes (C(34, 17) minimal
  masks are out of reach for any representation).

Lists are explicit up to 16 nodes and :class:`SupersetHints` (minimal masks, never expanded)
from 16 nodes on (both at 16); the weighted scenarios use SupersetHints at every size (and the
explicit expansion too at 16). The kubelet's permutation count is printed beside; the brute-force
merge is run (and checked equal) only when it has at most 1e6 permutations, otherwise the count
is computed.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from itertools import combinations, product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shim.cpu.hints import minimal_fits
from shim.topology_manager import (
    Bitmask,
    MergeStats,
    SupersetHints,
    TopologyHint,
    iterate_masks,
    merge,
)

BRUTE_FORCE_LIMIT = 10**6
EXPLICIT_MAX_NODES = 16
SLOTS = 4  # CPU slots per node in the weighted scenarios
WEIGHTED = ("busy-2", "half")


def free_nodes(scenario: str, nodes: int, provider: int) -> list[int]:
    if scenario == "fit-1":
        return list(range(nodes))
    start = (3 * provider) % nodes
    return sorted({(start + offset) % nodes for offset in range(3)})


def need(scenario: str, nodes: int) -> int:
    return 1 if scenario == "fit-1" else min(2, nodes)


def explicit_hints(nodes: int, free: list[int], size: int) -> list[TopologyHint]:
    free_mask = Bitmask.from_bits(free).value
    return [
        TopologyHint(mask, mask.count == size)
        for mask in iterate_masks(range(nodes))
        if (mask.value & free_mask).bit_count() >= size
    ]


def family_hints(nodes: int, free: list[int], size: int) -> SupersetHints:
    minimal = [Bitmask.from_bits(combo) for combo in combinations(free, size)]
    return SupersetHints.from_min_size(minimal, Bitmask.from_bits(range(nodes)), size)


def hint_count(nodes: int, free: list[int], size: int) -> int:
    """How many masks the kubelet's provider lists: at least ``size`` of the free nodes."""
    others = nodes - len(free)
    return sum(math.comb(len(free), k) for k in range(size, len(free) + 1)) * 2**others


def weighted_family(nodes: int, scenario: str, provider: int) -> SupersetHints:
    """Every mask whose free slots reach the need: upward closed, given by its minimal masks;
    preferred = minimal masks of the width an empty machine would need (the kubelet's rule)."""
    rng = random.Random(nodes * 100 + provider)
    free = [rng.randint(1, SLOTS) for _ in range(nodes)]
    need_slots = 2 * SLOTS if scenario == "busy-2" else nodes * SLOTS // 2
    found = minimal_fits(free, 0, need_slots)
    assert found is not None
    minimal = sorted(found, key=lambda value: (value.bit_count(), value))
    width = math.ceil(need_slots / SLOTS)
    return SupersetHints.trusted(minimal, (1 << nodes) - 1, [value for value in minimal if value.bit_count() == width])


def build(nodes: int, providers: int, scenario: str, explicit: bool) -> tuple[list[object], list[int]]:
    """The providers' hints and how many hints each provider's explicit list has."""
    if scenario in WEIGHTED:
        families = [weighted_family(nodes, scenario, p) for p in range(providers)]
        sizes = [len(family.expand()) if nodes <= EXPLICIT_MAX_NODES else -1 for family in families]
        return [{"res": family.expand() if explicit else family} for family in families], sizes
    size = need(scenario, nodes)
    frees = [free_nodes(scenario, nodes, p) for p in range(providers)]
    hints = [
        {"res": explicit_hints(nodes, free, size) if explicit else family_hints(nodes, free, size)} for free in frees
    ]
    return hints, [hint_count(nodes, free, size) for free in frees]


def run(nodes: int, providers: int, scenario: str, repeat: int, explicit: bool) -> dict[str, object]:
    hints, per_provider = build(nodes, providers, scenario, explicit)
    permutations = math.prod(per_provider) if min(per_provider) >= 0 else -1
    minimal = max(len(entry["res"].minimal) if isinstance(entry["res"], SupersetHints) else 0 for entry in hints)
    times, stats = [], MergeStats()
    for _ in range(repeat):
        stats = MergeStats()
        start = time.perf_counter()
        result = merge("best-effort", hints, range(nodes), stats=stats)
        times.append(time.perf_counter() - start)
    brute = ""
    if 0 <= permutations <= BRUTE_FORCE_LIMIT:
        start = time.perf_counter()
        expected = merge("best-effort", hints, range(nodes), reference=True)
        brute = f"{(time.perf_counter() - start) * 1000:.1f} ms"
        assert expected == result, (expected, result)
    return {
        "nodes": nodes,
        "providers": providers,
        "scenario": scenario,
        "repr": "explicit" if explicit else "superset",
        "hints": max(per_provider) if permutations >= 0 else "",
        "minimal": minimal or "",
        "median_ms": statistics.median(times) * 1000,
        "examined": stats.examined,
        "permutations": permutations if permutations >= 0 else float("inf"),
        "brute": brute or "not run",
        "hint": result[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nodes", type=int, nargs="*", default=[2, 4, 8, 16, 34])
    args = parser.parse_args()
    header = f"{'N':>3} {'P':>2} {'scenario':<8} {'lists':<9} {'hints/prov':>11} {'minimal/prov':>12} {'median':>10} "
    header += f"{'examined':>8} {'kubelet perms':>14} {'brute force':>12}  result"
    print(header)
    for nodes in args.nodes:
        for explicit, scenario, providers in product((True, False), ("fit-1", "split-2", *WEIGHTED), (2, 3, 4)):
            if nodes > EXPLICIT_MAX_NODES and (explicit or scenario == "half"):
                continue
            # The classic scenarios: explicit lists below 16 nodes, superset hints from 16 on;
            # the weighted ones as superset hints everywhere (and explicit at 16, to compare).
            wanted = nodes >= EXPLICIT_MAX_NODES or explicit != (scenario in WEIGHTED)
            if not wanted:
                continue
            row = run(nodes, providers, scenario, args.repeat, explicit)
            hint = row["hint"]
            assert isinstance(hint, TopologyHint)
            print(
                f"{nodes:>3} {providers:>2} {scenario:<8} {row['repr']:<9} {row['hints']:>11} {row['minimal']:>12} "
                f"{row['median_ms']:>7.2f} ms {row['examined']:>8} {row['permutations']:>14.3g} "
                f"{row['brute']:>12}  {hint.numa_ids()} {'preferred' if hint.preferred else 'not preferred'}"
            )


if __name__ == "__main__":
    main()
