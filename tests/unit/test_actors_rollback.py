"""Rollback: a provider that fails after another one allocated leaves nothing behind.

The node's memory provider is replaced by one whose manager fails on allocation (hints still
come from the real memory manager), so the CPU provider allocates and checkpoints first, then
must be told to ``Release``; its state file must end byte-identical to what it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shim.actors.base import EXTERNAL, Envelope
from shim.actors.provider import ProviderActor
from shim.actors.stores import FileCheckpointStore
from shim.config import default_config
from shim.messages import AdmitPod, Admitted, Allocated, AllocationFailed, Rejected, Release
from shim.pod import Pod
from shim.runtime.bus import Bus, Delivery
from shim.runtime.node import CPU_STATE, MEMORY_STATE, build_actors
from shim.topology.generate import generate
from shim.topology_manager.admission import AdmissionError

GiB = 1 << 30


class Boom(AdmissionError):
    admission_reason = "BoomError"


class FailingManager:
    """A memory manager whose allocation fails with ``error`` (everything else delegates)."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self.inner = inner
        self.error = error
        self.checkpoint_name = inner.checkpoint_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def allocate(self, pod: Pod, container: str | None, hint: Any) -> None:
        raise self.error


def pod(uid: str, *, budget: bool) -> Pod:
    spec: dict[str, Any] = {"containers": [{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
                                           {"name": "b"}]}
    if budget:
        spec["resources"] = {"limits": {"cpu": "3", "memory": "2Gi"}}
    else:
        spec["containers"][1]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": spec})


def node_bus(directory: Path, error: Exception | None, scope: str = "pod") -> tuple[Bus, list[Delivery]]:
    from msgspec.structs import replace

    config = replace(default_config(), topology_manager_scope=scope)
    topology = generate(sockets=2, cores_per_socket=4, threads_per_core=2, memory_per_numa=8 * GiB)
    store = FileCheckpointStore(directory)
    actors = build_actors(config, topology, store)
    memory: ProviderActor = actors.memory
    if error is not None:
        memory = ProviderActor("memory", FailingManager(actors.memory_manager, error), store)
    seen: list[Delivery] = []

    class Tap:
        def record(self, delivery: Delivery) -> None:
            seen.append(delivery)

    return Bus([actors.arbiter, actors.cpu, memory, actors.cgroups], tap=Tap()), seen


def admit(bus: Bus, item: Pod) -> Admitted | Rejected:
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=item)))
    bus.run_until_idle()
    outcome = bus.outbox[-1].msg
    assert isinstance(outcome, Admitted | Rejected)
    return outcome


@pytest.mark.parametrize("scope", ["pod", "container"])
@pytest.mark.parametrize("budget", [True, False], ids=["pod-level", "classic"])
def test_cpu_released_when_memory_fails(tmp_path: Path, scope: str, budget: bool) -> None:
    bus, seen = node_bus(tmp_path, RuntimeError("disk on fire"), scope)
    before = {name: (tmp_path / name).read_bytes() for name in (CPU_STATE, MEMORY_STATE)}
    outcome = admit(bus, pod("p", budget=budget))
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.message) == (
        "UnexpectedAdmissionError", "Allocate failed due to disk on fire, which is unexpected")
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    cpu_allocated = [d for d in seen if isinstance(d.msg, Allocated) and d.msg.provider == "cpu"]
    assert cpu_allocated, "the CPU provider never allocated: the test would prove nothing"
    releases = [d for d in seen if isinstance(d.msg, Release)]
    assert [(d.to, d.msg.pod_uid, d.msg.container) for d in releases] == [("cpu", "p", None)]
    # Nothing reaches the outside world but the rejection.
    assert [type(d.msg) for d in bus.outbox] == [Rejected]


def test_typed_error_keeps_its_reason_and_the_next_pod_is_admitted(tmp_path: Path) -> None:
    bus, _ = node_bus(tmp_path, Boom("no memory for you"))
    outcome = admit(bus, pod("p", budget=True))
    assert isinstance(outcome, Rejected) and (outcome.reason, outcome.message) == ("BoomError", "no memory for you")


def test_first_provider_failing_sends_no_release(tmp_path: Path) -> None:
    bus, seen = node_bus(tmp_path, None)
    # More CPUs than the machine has: the CPU provider (first) fails, memory never allocates.
    big = Pod.from_dict({"metadata": {"name": "big", "uid": "big"}, "spec": {"resources": {
        "limits": {"cpu": "40", "memory": "1Gi"}}, "containers": [{"name": "a"}]}})
    outcome = admit(bus, big)
    assert isinstance(outcome, Rejected)
    assert not any(isinstance(d.msg, Release) for d in seen)
    assert [d.msg.provider for d in seen if isinstance(d.msg, AllocationFailed)] == ["cpu"]


def test_admissions_queue_one_at_a_time(tmp_path: Path) -> None:
    bus, seen = node_bus(tmp_path, None)
    for uid in ("x", "y"):
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod(uid, budget=True))))
    bus.run_until_idle()
    assert [type(d.msg) for d in bus.outbox] == [Admitted, Admitted]
    # y's first hint request comes only after x's outcome was sent.
    outcome_x = next(d.seq for d in seen if d.to == EXTERNAL and d.msg.pod_uid == "x")  # type: ignore[union-attr]
    first_y = next(d.seq for d in seen if d.sender == "arbiter" and getattr(d.msg, "pod_uid", None) == "y")
    assert first_y > outcome_x
