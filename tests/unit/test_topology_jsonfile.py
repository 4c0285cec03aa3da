"""The topology JSON format: round trips, defaults, and one-line errors naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared_paths import SYSFS_FIXTURES

from shim.cpuset import CPUSet
from shim.topology import TopologyError, load_topology
from shim.topology.generate import generate
from shim.topology.jsonfile import dumps_topology, loads_topology
from shim.topology.sysfs import discover

FIXTURES = sorted(path.parent for path in SYSFS_FIXTURES.glob("*/expected.json"))


@pytest.mark.parametrize("root", FIXTURES, ids=[path.name for path in FIXTURES])
def test_discovered_topologies_round_trip(root: Path) -> None:
    topology = discover(root)
    text = dumps_topology(topology)
    again = loads_topology(text)
    assert again == topology
    assert dumps_topology(again) == text


@given(
    sockets=st.integers(1, 3),
    numa_per_socket=st.sampled_from([1, 2]),
    cores=st.sampled_from([2, 4, 6]),
    threads=st.integers(1, 2),
    uncore=st.sampled_from(["socket", "numa"]),
    numbering=st.sampled_from(["linux", "sequential"]),
)
def test_generated_topologies_round_trip(
    sockets: int, numa_per_socket: int, cores: int, threads: int, uncore: str, numbering: str
) -> None:
    topology = generate(
        sockets=sockets,
        numa_per_socket=numa_per_socket,
        cores_per_socket=cores,
        threads_per_core=threads,
        hugepages_per_numa={"2Mi": 2 << 20},
        uncore=uncore,
        numbering=numbering,
    )  # type: ignore[arg-type]
    assert loads_topology(dumps_topology(topology)) == topology


def test_documented_keys_only() -> None:
    text = json.dumps(
        {
            "cpus": [
                {"id": 0, "socket": 0, "core": 0, "numa": 0, "uncore": 0},
                {"id": 1, "socket": 0, "core": 0, "numa": 1, "uncore": 0},
            ],
            "numa": [
                {"id": 0, "memory": 1024, "hugepages": {"2Mi": 2097152}, "distances": [10, 20]},
                {"id": 1, "memory": 2048, "hugepages": {}, "distances": [20, 10]},
            ],
        }
    )
    topology = loads_topology(text)
    assert (topology.cpu.num_cpus, topology.cpu.num_cores, topology.cpu.num_numa_nodes) == (2, 1, 2)
    assert topology.node(1).cpus == CPUSet.of((1,))
    assert topology.node(0).hugepages == {"2Mi": 2097152}
    assert topology.allowed_cpus == CPUSet.of((0, 1)) and topology.allowed_mems == CPUSet.of((0, 1))
    assert topology.distance_rows() == {0: [10, 20], 1: [20, 10]}
    assert topology.uncore_groups == {0: CPUSet.of((0, 1))}


def test_explicit_counts_are_kept() -> None:
    # The kubelet's own test topologies leave counters at 0; the file can say so.
    text = json.dumps(
        {
            "cpus": [{"id": i, "socket": 0, "core": i, "numa": 0, "uncore": 0} for i in range(4)],
            "counts": {"num_cpus": 4, "num_cores": 4, "num_sockets": 1, "num_numa_nodes": 0, "num_uncore_caches": 0},
        }
    )
    topology = loads_topology(text)
    assert (topology.cpu.num_numa_nodes, topology.cpu.num_uncore_caches) == (0, 0)
    assert topology.numa_ids == [0] and topology.node(0).memory == 0


CPU0 = {"id": 0, "socket": 0, "core": 0, "numa": 0, "uncore": 0}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cpus": [CPU0], "extra": 1}, "Object contains unknown field `extra`"),
        ({"cpus": [{**CPU0, "socket": "0"}]}, "Expected `int`, got `str` - at `$.cpus[0].socket`"),
        ({"cpus": [CPU0, CPU0]}, "cpus[1].id: duplicate cpu 0"),
        ({"cpus": [{**CPU0, "numa": -1}]}, "cpus[0].numa: negative value -1"),
        ({"cpus": [{**CPU0, "numa": 1}], "numa": [{"id": 0}]}, "cpus[0].numa: 1 is not a node of numa[]"),
        ({"cpus": [CPU0], "numa": [{"id": 0, "distances": [10, 20]}]}, "numa[0].distances: 2 values for 1 nodes"),
        ({"cpus": [CPU0], "numa": [{"id": 0, "cpus": "0-1"}]}, "numa[0].cpus: '0-1' disagrees with cpus[].numa (0)"),
        ({"cpus": [CPU0], "numa": [{"id": 0, "memory": -5}]}, "numa[0].memory: negative value -5"),
        ({"cpus": [CPU0], "allowed_cpus": "1-0"}, "allowed_cpus: invalid cpu list '1-0'"),
        ({"cpus": []}, "cpus: no cpus"),
    ],
)
def test_errors_are_one_line_with_file_and_field(tmp_path: Path, data: object, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"absent\.json: cannot read: No such file or directory$"):
        load_topology(tmp_path / "absent.json")
    with pytest.raises(TopologyError, match=r"^<topology>: Input data was truncated$"):
        loads_topology("{")
