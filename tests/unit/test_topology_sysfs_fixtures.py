"""Every sysfs fixture tree discovers without error and matches its expected.json.

Facts compared: online cpus, packages (sockets), cores and their threads, NUMA nodes with their
cpus, memory and huge pages, L3 groups, distances, allowed cpus/mems, PCI and net devices.

Where podshim deliberately differs from a raw sysfs fact, the test states the rule instead of
the fixture value (never a per-fixture exception):
- an online cpu that no online NUMA node lists is not in the CPU table (the kubelet builds the
  table from node directories); the fact is still checked in ``Discovery.unplaced_cpus``;
- a cpu listed by several nodes (broken firmware) belongs to the lowest of them; the raw lists
  are checked in ``Discovery.node_cpulists``;
- negative package ids (s390x) are replaced by the index of the core_siblings group;
- without L3 cache ids the uncore id is the socket id (kubelet fallback);
- without a node directory there is one node 0 with /proc/meminfo memory and the global pools;
- a node without a hugepages/ directory gets its default-size pool from the node meminfo.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from shared_paths import SYSFS_FIXTURES, load_json

from shim.cpuset import CPUSet
from shim.quantity import format_bytes
from shim.topology.sysfs import Discovery, discover_report

FIXTURES = sorted(path.parent for path in SYSFS_FIXTURES.glob("*/expected.json"))
IDS = [path.name for path in FIXTURES]


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) >= 18


@cache
def _discover(root: Path) -> Discovery:
    return discover_report(root)


@cache
def _expected(root: Path) -> Any:
    return load_json(root / "expected.json")


def cs(text: str | None) -> CPUSet:
    return CPUSet.parse(text or "")


def _expected_nodes(expected: Any) -> list[dict[str, Any]]:
    return list(expected["numa"]["nodes"]) if expected["numa"] else []


def _unplaced(expected: Any) -> CPUSet:
    online = cs(expected["cpus"]["online"])
    if expected["numa"] is None:
        return CPUSet()
    listed = CPUSet().union(*(cs(node["cpus"]) for node in _expected_nodes(expected)))
    return online - listed


@pytest.fixture(params=FIXTURES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Discovery, Any]:
    root: Path = request.param
    return _discover(root), _expected(root)


def test_online_and_managed_cpus(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    online = cs(expected["cpus"]["online"])
    assert found.online_cpus == online
    assert found.offline_cpus == cs(expected["cpus"]["offline_with_cpu_dir"])
    assert found.unplaced_cpus == _unplaced(expected)
    assert found.topology.cpu.all_cpus == online - _unplaced(expected)
    assert found.topology.cpu.num_cpus == len(found.topology.cpu.details)


def test_cores_are_thread_sibling_groups(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    details = found.topology.cpu.details
    managed = CPUSet.of(details)
    expected_cores = {cs(core["cpus"]) & managed for core in expected["cores"]} - {CPUSet()}
    by_core: dict[int, CPUSet] = {}
    for cpu, info in details.items():
        by_core[info.core] = by_core.get(info.core, CPUSet()) | CPUSet.of((cpu,))
    assert set(by_core.values()) == expected_cores
    # The kubelet's core id: the lowest thread id of the core.
    assert all(core == threads.min() for core, threads in by_core.items())
    assert found.topology.cpu.num_cores == len(expected_cores)


def test_sockets(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    details = found.topology.cpu.details
    managed = CPUSet.of(details)
    packages = expected["packages"]
    by_socket: dict[int, CPUSet] = {}
    for cpu, info in details.items():
        by_socket[info.socket] = by_socket.get(info.socket, CPUSet()) | CPUSet.of((cpu,))
    if all(int(key) >= 0 for key in packages["cpus"]):
        wanted = {int(key): cs(cpus) & managed for key, cpus in packages["cpus"].items()}
        assert by_socket == {key: cpus for key, cpus in wanted.items() if cpus}
    else:
        groups = sorted((cs(text) for text in packages["by_core_siblings"]), key=CPUSet.min)
        assert by_socket == {index: group & managed for index, group in enumerate(groups)}
    assert found.topology.cpu.num_sockets == len(by_socket)


def test_numa_nodes(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    topology = found.topology
    nodes = _expected_nodes(expected)
    if expected["numa"] is None:
        assert topology.numa_ids == [0]
        node = topology.numa[0]
        assert node.cpus == topology.cpu.all_cpus
        assert node.memory == expected["meminfo_memtotal_kb"] * 1024
        pools = expected["hugepages_global_kb"] or {}
        assert node.hugepages == {format_bytes(int(kb) * 1024): int(kb) * 1024 * p["nr"] for kb, p in pools.items()}
        return
    assert topology.numa_ids == [node["id"] for node in nodes]
    owner: dict[int, int] = {}
    for node in nodes:  # nodes are sorted by id: the lowest node listing a cpu keeps it
        for cpu in cs(node["cpus"]):
            owner.setdefault(cpu, node["id"])
    for got, want in zip(topology.numa, nodes, strict=True):
        assert found.node_cpulists[got.id] == cs(want["cpus"])
        assert got.cpus == CPUSet.of(cpu for cpu, node_id in owner.items() if node_id == got.id)
        assert got.memory == want["memory_total_kb"] * 1024
        if want["hugepages_kb"] is not None:
            wanted = {format_bytes(int(kb) * 1024): int(kb) * 1024 * p["nr"] for kb, p in want["hugepages_kb"].items()}
        elif (want["meminfo_default_hugepages"] or {}).get("total"):
            page_kb = expected["meminfo_default_hugepagesize_kb"]
            wanted = {format_bytes(page_kb * 1024): page_kb * 1024 * want["meminfo_default_hugepages"]["total"]}
        else:
            wanted = {}
        assert got.hugepages == wanted
    details = topology.cpu.details
    assert all(details[cpu].numa == node_id for cpu, node_id in owner.items())
    assert topology.cpu.num_numa_nodes == len({node_id for node_id in owner.values()})


def test_distances(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    if expected["numa"] is None:
        assert [node.distances for node in found.topology.numa] == [(10,)]
        return
    matrix = expected["numa"]["distance_matrix"]
    assert matrix is not None
    assert matrix["node_ids"] == found.topology.numa_ids
    assert [list(node.distances) for node in found.topology.numa] == matrix["rows"]


def test_l3_groups_and_uncore(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    details = found.topology.cpu.details
    managed = CPUSet.of(details)
    l3 = expected["caches"].get("L3") or []
    assert [(group.id, group.cpus) for group in found.l3_groups] == [(g["id"], cs(g["cpus"])) for g in l3]
    if l3 and all(group["id"] is not None for group in l3):
        wanted = {group["id"]: cs(group["cpus"]) & managed for group in l3}
        assert found.topology.uncore_groups == {key: cpus for key, cpus in wanted.items() if cpus}
    else:
        # No cache ids: the kubelet's fallback is the socket id.
        assert all(info.uncore == info.socket for info in details.values())
    assert found.topology.cpu.num_uncore_caches == len(found.topology.uncore_groups)


def test_allowed_cpus_and_mems(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    assert found.topology.allowed_cpus == cs(expected["allowed_cpus"])
    assert found.topology.allowed_mems == cs(expected["allowed_mems"])
    group = expected["cgroup"]
    if group is None:
        assert found.cgroup is None
    else:
        assert found.cgroup is not None
        assert (found.cgroup.kind, found.cgroup.mountpoint, found.cgroup.path) == (
            group["type"],
            group["mountpoint"],
            group["path"],
        )


def test_devices(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    pci = [d for d in found.topology.devices if d.kind == "pci"]
    net = [d for d in found.topology.devices if d.kind == "net"]
    wanted_pci = expected["pci_devices"] or []
    assert [(d.name, d.numa, d.local_cpus, d.pci_class) for d in pci] == [
        (w["address"], None if w["numa_node"] in (None, -1) else w["numa_node"], cs(w["local_cpulist"]), w["class"])
        for w in wanted_pci
    ]
    wanted_net = expected["net"] or []
    assert [(d.name, d.numa) for d in net] == [
        (w["name"], None if w["numa_node"] in (None, -1) else w["numa_node"]) for w in wanted_net
    ]
    assert found.net_pci_parents == {w["name"]: w["pci"] for w in wanted_net}


def test_summary_counts_agree(case: tuple[Discovery, Any]) -> None:
    found, expected = case
    summary = expected["summary"]
    cpu = found.topology.cpu
    if not found.unplaced_cpus:
        assert cpu.num_cores == summary["cores"]
        assert cpu.num_sockets == summary["packages"]
    listed = [cs(node["cpus"]) for node in _expected_nodes(expected)]
    overlapping = sum(len(cpus) for cpus in listed) != len(CPUSet().union(*listed))
    if expected["numa"] is not None and not overlapping:
        assert [node.id for node in found.topology.numa if node.cpus] == summary["numa_nodes_with_cpus"]
