"""Write the example topologies of this directory from shim.topology.generate.

Run from the repository: ``.venv/bin/python examples/topologies/generate.py`` (``--check``
exits 1 when a file differs from what the generator produces).
"""

from __future__ import annotations

import sys
from pathlib import Path

from shim.topology.generate import GiB, default_distances, generate
from shim.topology.jsonfile import dumps_topology
from shim.topology.model import Topology

HERE = Path(__file__).resolve().parent


def examples() -> dict[str, Topology]:
    """File name → topology."""
    return {
        # 2 sockets, 20 cores x 2 threads each, one NUMA node per socket.
        "2socket-ht.json": generate(
            sockets=2, numa_per_socket=1, cores_per_socket=20, threads_per_core=2,
            memory_per_numa=192 * GiB, hugepages_per_numa={"2Mi": 0, "1Gi": 8 * GiB},
        ),
        # Sub-NUMA clustering (SNC2): 2 NUMA nodes per socket, one L3 per socket.
        "snc2-4numa.json": generate(
            sockets=2, numa_per_socket=2, cores_per_socket=20, threads_per_core=2,
            memory_per_numa=96 * GiB, hugepages_per_numa={"2Mi": 1 * GiB, "1Gi": 4 * GiB},
            uncore="socket",
        ),
        # A large machine: 4 sockets x 4 NUMA nodes, 128 cores x 2 threads per socket = 1024 cpus,
        # one L3 per NUMA node.
        "16numa-1024cpu.json": generate(
            sockets=4, numa_per_socket=4, cores_per_socket=128, threads_per_core=2,
            memory_per_numa=128 * GiB, hugepages_per_numa={"2Mi": 0, "1Gi": 16 * GiB},
            distances=default_distances(4, 4, near=12, remote=32), uncore="numa",
        ),
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, topology in examples().items():
        path = HERE / name
        text = dumps_topology(topology)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    for name in stale:
        print(f"{name}: differs from the generator", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
