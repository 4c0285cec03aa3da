"""Discovery details on small hand-made trees: link handling, file format, errors, cgroups."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from shared_paths import SYSFS_FIXTURES

from shim.cpuset import CPUSet
from shim.topology import TopologyError
from shim.topology.jsonfile import to_data
from shim.topology.reader import DirectoryReader, MemoryReader, parse_cpumask
from shim.topology.sysfs import discover, discover_report

CPU = "sys/devices/system/cpu"
NODE = "sys/devices/system/node"


def small_machine(**overrides: str | bytes | None) -> dict[str, str | bytes]:
    """Two cores x two threads on one socket, two NUMA nodes (one per core)."""
    files: dict[str, str | bytes | None] = {f"{CPU}/online": "0-3\n", "proc/meminfo": "MemTotal: 1000 kB\n"}
    for cpu in range(4):
        core = cpu % 2
        base = f"{CPU}/cpu{cpu}/topology"
        files[f"{base}/physical_package_id"] = "0\n"
        files[f"{base}/core_id"] = f"{core}\n"
        files[f"{base}/thread_siblings_list"] = f"{core},{core + 2}\n"
        files[f"{base}/core_siblings_list"] = "0-3\n"
    for node in range(2):
        base = f"{NODE}/node{node}"
        files[f"{base}/cpulist"] = f"{node},{node + 2}\n"
        files[f"{base}/meminfo"] = f"Node {node} MemTotal:  {1024 * (node + 1)} kB\nNode {node} HugePages_Total: 0\n"
        files[f"{base}/distance"] = "10 20\n" if node == 0 else "20 10\n"
        files[f"{base}/hugepages/hugepages-2048kB/nr_hugepages"] = f"{node + 1}\n"
    files.update(overrides)
    return {path: content for path, content in files.items() if content is not None}


def cycle_links() -> dict[str, str]:
    links = {}
    for cpu in range(4):
        node = cpu % 2
        links[f"{NODE}/node{node}/cpu{cpu}"] = f"../../cpu/cpu{cpu}"
        links[f"{CPU}/cpu{cpu}/node{node}"] = f"../../node/node{node}"
    return links


def test_small_machine_in_memory() -> None:
    topology = discover(reader=MemoryReader(small_machine(), cycle_links()))
    details = topology.cpu.details
    assert {cpu: (info.socket, info.core, info.numa, info.uncore) for cpu, info in details.items()} == {
        0: (0, 0, 0, 0),
        1: (0, 1, 1, 0),
        2: (0, 0, 0, 0),
        3: (0, 1, 1, 0),
    }
    assert [(n.id, str(n.cpus), n.memory, n.hugepages, n.distances) for n in topology.numa] == [
        (0, "0,2", 1024 * 1024, {"2Mi": 2 * 1024 * 1024}, (10, 20)),
        (1, "1,3", 2048 * 1024, {"2Mi": 4 * 1024 * 1024}, (20, 10)),
    ]
    assert (topology.cpu.num_cpus, topology.cpu.num_cores, topology.cpu.num_sockets) == (4, 2, 1)


def test_real_symlink_cycles_and_escapes_are_not_followed(tmp_path: Path) -> None:
    for path, content in small_machine().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    for path, link in cycle_links().items():
        os.symlink(link, tmp_path / path)
    # A self loop and an absolute link that must resolve inside the tree, not on the host.
    os.symlink("loop", tmp_path / CPU / "loop")
    pci = tmp_path / "sys/bus/pci/devices"
    pci.mkdir(parents=True)
    device = tmp_path / "sys/devices/pci0000:00/0000:00:1f.0"
    device.mkdir(parents=True)
    (device / "numa_node").write_text("1\n")
    (device / "local_cpulist").write_text("1,3\n")
    os.symlink("/sys/devices/pci0000:00/0000:00:1f.0", pci / "0000:00:1f.0")
    os.symlink("/etc", pci / "0000:00:1e.0")  # absolute: means <root>/etc, which is absent
    from_disk = discover(tmp_path)
    from_memory = discover(reader=MemoryReader.snapshot(tmp_path))
    assert from_disk == from_memory
    assert [(d.name, d.numa, str(d.local_cpus)) for d in from_disk.devices] == [("0000:00:1f.0", 1, "1,3")]


def test_links_stored_as_files_resolve_like_links(tmp_path: Path) -> None:
    source = SYSFS_FIXTURES / "local-vm"
    copy = tmp_path / "tree"
    shutil.copytree(source, copy)
    for dirpath, _dirs, _files in os.walk(copy):
        os.chmod(dirpath, 0o755)  # the shared fixtures are read-only
    relinked = 0
    for dirpath, _dirs, files in os.walk(copy):
        for name in files:
            path = Path(dirpath) / name
            data = path.read_bytes()
            if data.startswith(b"../") and b"\n" not in data:
                path.chmod(0o644)
                path.unlink()
                os.symlink(data.decode(), path)
                relinked += 1
    assert relinked > 0
    assert to_data(discover(copy)) == to_data(discover(source))


def test_nul_terminated_files_and_masks() -> None:
    files = small_machine(
        **{
            f"{CPU}/online": b"0-3\n\x00",
            f"{NODE}/node0/cpulist": None,
            f"{NODE}/node0/cpumap": b"00000000,00000005\n\x00",
        }
    )
    topology = discover(reader=MemoryReader(files))
    assert topology.node(0).cpus == CPUSet.of((0, 2))
    assert parse_cpumask("00000001,00000000") == CPUSet.of((32,))


def test_online_from_per_cpu_files_when_global_list_is_absent() -> None:
    # cpu0 has no online file (online), cpu1 an empty one (online), cpu3 is offline and has
    # no topology directory, as the kernel leaves it.
    files = small_machine(
        **{
            f"{CPU}/online": None,
            f"{CPU}/cpu1/online": "",
            f"{CPU}/cpu2/online": "1\n",
            f"{CPU}/cpu3/online": "0\n",
            f"{CPU}/cpu3/topology/physical_package_id": None,
            f"{CPU}/cpu3/topology/core_id": None,
            f"{CPU}/cpu3/topology/thread_siblings_list": None,
            f"{CPU}/cpu3/topology/core_siblings_list": None,
        }
    )
    found = discover_report(reader=MemoryReader(files))
    assert found.online_cpus == CPUSet.of((0, 1, 2))
    assert found.offline_cpus == CPUSet.of((3,))
    # cpu1's sibling cpu3 is offline: a one-thread core with id 1.
    assert found.topology.cpu.details[1].core == 1
    assert found.topology.node(1).cpus == CPUSet.of((1,))


def test_no_node_directory_gives_one_node() -> None:
    files = {k: v for k, v in small_machine().items() if not k.startswith(NODE)}
    files["sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"] = "2\n"
    topology = discover(reader=MemoryReader(files))
    assert topology.numa_ids == [0]
    assert topology.node(0).memory == 1000 * 1024
    assert topology.node(0).hugepages == {"1Gi": 2 * 1024**3}
    assert topology.allowed_mems == CPUSet.of((0,))


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (f"{CPU}/cpu1/topology/physical_package_id", "missing"),
        (f"{CPU}/cpu2/topology/thread_siblings_list", "missing"),
        (f"{NODE}/node1/meminfo", "missing"),
        (f"{NODE}/node0/cpulist", "missing"),
    ],
)
def test_missing_required_file_names_the_path(path: str, problem: str) -> None:
    with pytest.raises(TopologyError) as error:
        discover(reader=MemoryReader(small_machine(**{path: None}), name="/root"))
    assert str(error.value) == f"/root/{path}: {problem}"


def test_unreadable_required_file_names_the_path() -> None:
    path = f"{NODE}/node1/meminfo"
    with pytest.raises(TopologyError, match=f"^/root/{path}: cannot read: Permission denied$"):
        discover(reader=MemoryReader(small_machine(), unreadable=[path], name="/root"))


def test_bad_content_is_an_error() -> None:
    with pytest.raises(TopologyError, match="physical_package_id: not an integer: 'x'"):
        discover(reader=MemoryReader(small_machine(**{f"{CPU}/cpu0/topology/physical_package_id": "x\n"})))
    with pytest.raises(TopologyError, match="online: invalid cpu list '3-1'"):
        discover(reader=MemoryReader(small_machine(**{f"{CPU}/online": "3-1\n"})))


def test_missing_tree_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=f"^{tmp_path}/{CPU}: missing$"):
        discover(tmp_path)


def test_cgroup2_inherits_from_the_nearest_ancestor() -> None:
    files = small_machine(
        **{
            "proc/self/cgroup": "0::/a/b\n",
            "sys/fs/cgroup/cpuset.cpus.effective": "0-3\n",
            "sys/fs/cgroup/cpuset.mems.effective": "0-1\n",
            "sys/fs/cgroup/a/cpuset.cpus.effective": "1-2\n",
            "sys/fs/cgroup/a/cpuset.mems.effective": "1\n",
            "sys/fs/cgroup/a/b/cgroup.procs": "",
        }
    )
    found = discover_report(reader=MemoryReader(files))
    assert found.cgroup is not None and found.cgroup.directory == "sys/fs/cgroup/a/b"
    assert (found.topology.allowed_cpus, found.topology.allowed_mems) == (CPUSet.of((1, 2)), CPUSet.of((1,)))


def test_cgroup1_effective_wins_over_requested() -> None:
    files = small_machine(
        **{
            "proc/self/cpuset": "/job\n",
            "sys/fs/cgroup/cpuset/cpuset.cpus": "0-3\n",
            "sys/fs/cgroup/cpuset/job/cpuset.cpus": "0-3\n",
            "sys/fs/cgroup/cpuset/job/cpuset.effective_cpus": "2-3\n",
            "sys/fs/cgroup/cpuset/job/cpuset.mems": "0\n",
        }
    )
    topology = discover(reader=MemoryReader(files))
    assert (str(topology.allowed_cpus), str(topology.allowed_mems)) == ("2-3", "0")


def test_dangling_device_links_are_skipped() -> None:
    links = {
        "sys/bus/pci/devices/0000:00:01.0": "../../../devices/pci0000:00/0000:00:01.0",
        "sys/class/net/lo": "../../devices/virtual/net/lo",
    }
    topology = discover(reader=MemoryReader(small_machine(), links))
    assert [(d.name, d.kind, d.numa) for d in topology.devices] == [("lo", "net", None)]


def test_directory_reader_does_not_follow_a_final_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    os.symlink("real", tmp_path / "link")
    reader = DirectoryReader(tmp_path)
    assert reader.kind("link") == "link"
    with pytest.raises(OSError):
        reader.read_bytes("link")


def test_resolution_through_cycles_terminates() -> None:
    from shim.topology.reader import Tree

    links = {**cycle_links(), "a": "b", "b": "/a", "up": "../../../.."}
    tree = Tree(MemoryReader(small_machine(), links))
    deep = f"{CPU}/cpu0/node0/cpu0/node0/cpu2/topology/core_id"
    assert tree.resolve(deep) == f"{CPU}/cpu2/topology/core_id"
    assert tree.text(deep) == "0"
    assert tree.resolve("a") is None  # a -> b -> /a -> ... gives up after the hop limit
    assert tree.resolve("up/proc/meminfo") == "proc/meminfo"  # '..' stops at the root
