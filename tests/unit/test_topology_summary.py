"""The human-readable topology summary."""

from __future__ import annotations

from shared_paths import SYSFS_FIXTURES

from shim.topology.generate import GiB, generate
from shim.topology.summary import human_bytes, summarize
from shim.topology.sysfs import discover_report


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 3 * GiB, 5 * 1024**4)] == [
        "0 B", "1023 B", "1.5 KiB", "3 GiB", "5 TiB"]


def test_generated_machine_summary() -> None:
    text = summarize(generate(sockets=2, numa_per_socket=2, cores_per_socket=4, threads_per_core=2,
                              memory_per_numa=3 * GiB, hugepages_per_numa={"1Gi": GiB}))
    lines = text.splitlines()
    assert lines[:4] == [
        "CPUs: 16 (0-15)",
        "Sockets: 2  Cores: 8  SMT: on (2 threads per core)",
        "NUMA nodes: 4 (4 with cpus)  Uncore (L3) groups: 2",
        "Allowed: cpus 0-15  mems 0-3",
    ]
    assert "  1     3 GiB   1Gi: 1 GiB  0        2-3,10-11" in lines
    assert "  3  21  21  11  10" in lines


def test_discovered_summary_shows_what_the_model_leaves_out() -> None:
    found = discover_report(SYSFS_FIXTURES / "offline-cpu0-node0")
    text = summarize(found.topology, found)
    assert "Offline cpus: 0-3,21-23" in text
    assert "Online cpus outside the managed topology: 4,6,8,10,12,14,16,18,20" in text
    assert "  1      30 MiB  5,7,9,11,13,15,17,19" in text  # L3 id 1
    assert "Warnings" in text


def test_cache_groups_without_ids_and_devices() -> None:
    found = discover_report(SYSFS_FIXTURES / "local-vm")
    text = summarize(found.topology, found)
    assert "SMT: off" in text
    assert "  eth0          net   -     0-1         0x020000  0000:00:03.0" in text.splitlines()
    arm = discover_report(SYSFS_FIXTURES / "128arm-2pa2n8cluster4co")
    assert "no cache ids: the kubelet falls back to the socket id" in summarize(arm.topology, arm)
