"""Synthetic topologies, and the example files generated from them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from shim.cpuset import CPUSet
from shim.topology import load_topology
from shim.topology.generate import GiB, default_distances, generate
from shim.topology.jsonfile import dumps_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "topologies"


def test_linux_numbering_two_sockets_with_smt() -> None:
    topology = generate(sockets=2, cores_per_socket=4, threads_per_core=2)
    details = topology.cpu.details
    assert (topology.cpu.num_cpus, topology.cpu.num_cores, topology.cpu.num_sockets) == (16, 8, 2)
    # cpu n and n+8 are siblings; the core id is the lowest of them.
    assert details[9].core == 1 and details[1].core == 1 and details[9].socket == 0
    assert details[12].socket == 1 and details[12].numa == 1
    assert topology.node(1).cpus == CPUSet.parse("4-7,12-15")
    assert topology.cpu.cpus_per_core == 2


def test_sequential_numbering_and_uncore_per_numa() -> None:
    topology = generate(
        sockets=1, numa_per_socket=2, cores_per_socket=4, threads_per_core=2, numbering="sequential", uncore="numa"
    )
    assert [(c, i.core, i.numa, i.uncore) for c, i in topology.cpu.details.items()][:5] == [
        (0, 0, 0, 0),
        (1, 0, 0, 0),
        (2, 2, 0, 0),
        (3, 2, 0, 0),
        (4, 4, 1, 1),
    ]
    assert topology.uncore_groups == {0: CPUSet.parse("0-3"), 1: CPUSet.parse("4-7")}


def test_memory_hugepages_distances() -> None:
    topology = generate(
        sockets=2, numa_per_socket=2, cores_per_socket=2, memory_per_numa=3 * GiB, hugepages_per_numa={"1Gi": GiB}
    )
    assert topology.node(3).memory == 3 * GiB and topology.node(3).hugepages == {"1Gi": GiB}
    assert topology.distance_rows()[0] == [10, 11, 21, 21]
    assert default_distances(1, 1) == [[10]]


@pytest.mark.parametrize(
    "kwargs",
    [{"cores_per_socket": 3, "numa_per_socket": 2}, {"sockets": 0}, {"sockets": 2, "distances": [[10]]}],
)
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate(**kwargs)  # type: ignore[arg-type]


def test_example_files_are_what_the_script_generates() -> None:
    script = runpy.run_path(str(EXAMPLES / "generate.py"))
    produced = script["examples"]()
    assert {"2socket-ht.json", "snc2-4numa.json", "16numa-1024cpu.json"} <= set(produced)
    for name, topology in produced.items():
        path = EXAMPLES / name
        assert path.read_text(encoding="utf-8") == dumps_topology(topology), f"{name}: run generate.py"
        assert load_topology(path) == topology


def test_example_shapes() -> None:
    big = load_topology(EXAMPLES / "16numa-1024cpu.json")
    assert (big.cpu.num_cpus, big.cpu.num_numa_nodes, big.cpu.num_sockets) == (1024, 16, 4)
    snc = load_topology(EXAMPLES / "snc2-4numa.json")
    assert (snc.cpu.num_numa_nodes, snc.cpu.num_uncore_caches) == (4, 2)
    ht = load_topology(EXAMPLES / "2socket-ht.json")
    assert (ht.cpu.num_cpus, ht.cpu.num_cores, ht.cpu.num_numa_nodes) == (80, 40, 2)
