"""CgroupWriterActor and TopologyActor: effects go through the injected backend / discover."""

from __future__ import annotations

import errno

import pytest

from shim.actors.base import Actor, Envelope, ManualClock
from shim.actors.cgroup_writer import AppliedCall, CgroupWriterActor, RecordingCgroupBackend
from shim.actors.topology import TopologyActor
from shim.cpuset import CPUSet
from shim.messages import Applied, Apply, ApplyFailed, DiscoverTopology, Reconcile, TopologyDiscovered, TopologyFailed
from shim.topology import TopologyError
from shim.topology.model import CPUInfo, CPUTopology, NUMANode, Topology

APPLY = Apply(
    pod_uid="p",
    container="c",
    cgroup="/kubepods/podp/c",
    cpus="2-3",
    mems="0",
    cpu_quota="limited",
    cpu_limit_millis=1500,
    pid=77,
)


def test_apply_calls_the_backend_and_reports_applied() -> None:
    backend = RecordingCgroupBackend()
    writer = CgroupWriterActor(backend)
    assert isinstance(writer, Actor)
    out = writer.handle(APPLY)
    assert out == [Envelope(to="arbiter", message=Applied(pod_uid="p", container="c", cgroup="/kubepods/podp/c"))]
    assert backend.calls == [AppliedCall("/kubepods/podp/c", "2-3", "0", "limited", 1500, 77)]


def test_kernel_refusal_becomes_apply_failed() -> None:
    backend = RecordingCgroupBackend(failures={"/kubepods/podp/c": (errno.EACCES, "/sys/fs/cgroup/x/cpuset.cpus")})
    out = CgroupWriterActor(backend, reply_to="hook").handle(APPLY)
    assert out == [
        Envelope(
            to="hook",
            message=ApplyFailed(
                pod_uid="p",
                container="c",
                errno=errno.EACCES,
                path="/sys/fs/cgroup/x/cpuset.cpus",
                message="Permission denied",
            ),
        )
    ]
    assert backend.calls == []


def test_error_without_a_filename_names_the_cgroup() -> None:
    class Broken:
        def apply(self, cgroup: str, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    [envelope] = CgroupWriterActor(Broken()).handle(APPLY)
    assert envelope.message == ApplyFailed(
        pod_uid="p", container="c", errno=errno.ENOSPC, path="/kubepods/podp/c", message="No space left on device"
    )


def test_bugs_in_the_backend_propagate() -> None:
    class Buggy:
        def apply(self, cgroup: str, **kwargs: object) -> None:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        CgroupWriterActor(Buggy()).handle(APPLY)


def test_writer_refuses_other_messages() -> None:
    with pytest.raises(TypeError, match="cgroup-writer cannot handle Reconcile"):
        CgroupWriterActor(RecordingCgroupBackend()).handle(Reconcile())


def small_topology() -> Topology:
    details = {0: CPUInfo(0, 0, 0, 0), 1: CPUInfo(0, 0, 0, 0)}
    return Topology(
        cpu=CPUTopology.from_details(details),
        numa=(NUMANode(id=0, cpus=CPUSet.of([0, 1]), memory=1 << 30),),
        allowed_cpus=CPUSet.of([0, 1]),
        allowed_mems=CPUSet.of([0]),
    )


def test_topology_actor_tells_every_subscriber() -> None:
    topology = small_topology()
    calls = []

    def discover() -> Topology:
        calls.append(1)
        return topology

    actor = TopologyActor(discover, subscribers=("arbiter", "cpu"))
    out = actor.handle(DiscoverTopology())
    assert [e.to for e in out] == ["arbiter", "cpu"]
    for envelope in out:
        assert isinstance(envelope.message, TopologyDiscovered)
        assert envelope.message.topology.to_topology() == topology
    assert actor.topology == topology
    actor.handle(DiscoverTopology())
    assert len(calls) == 2


@pytest.mark.parametrize("error", [TopologyError("/sys/devices/system/node: missing"), FileNotFoundError("/x")])
def test_topology_failure_is_a_message(error: Exception) -> None:
    def discover() -> Topology:
        raise error

    out = TopologyActor(discover).handle(DiscoverTopology())
    assert out == [Envelope(to="arbiter", message=TopologyFailed(message=str(error)))]


def test_manual_clock() -> None:
    clock = ManualClock(5.0)
    clock.advance(2.5)
    assert clock.now() == 7.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
