"""One checkpoint per decision: a crash in the middle of an admission never half-admits a pod.

The providers persist on ``Commit`` (sent by the arbiter right before ``Admitted``) and on
``Release``, not on each ``AllocateRequest``. Crashes are simulated by dropping the bus after
every possible number of deliveries of one admission (the files on disk are all that is left),
and once for real by a child process that dies (``os._exit``) between two containers'
allocations. Each state file must then be byte-identical to what it was before the admission or
to what it is after the complete admission, and a node must start again from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from shim.actors.base import Envelope
from shim.actors.stores import FileCheckpointStore, MemoryCheckpointStore
from shim.config import default_config
from shim.cpu import checkpoint as cpu_checkpoint
from shim.messages import AdmitPod, Admitted, AllocateRequest, Commit
from shim.pod import Pod
from shim.runtime.bus import Bus, Delivery
from shim.runtime.node import CPU_STATE, MEMORY_STATE, Node, build_actors
from shim.topology.generate import generate
from shim.topology.model import Topology

GiB = 1 << 30
STATES = (CPU_STATE, MEMORY_STATE)


def topology() -> Topology:
    return generate(sockets=2, cores_per_socket=4, threads_per_core=2, memory_per_numa=8 * GiB)


def make_pod(uid: str, *, budget: bool) -> Pod:
    containers: list[dict[str, Any]] = [
        {"name": name, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}} for name in ("a", "b", "c")
    ]
    spec: dict[str, Any] = {"containers": containers}
    if budget:
        containers[2].pop("resources")  # c runs in the pod's shared pool
        spec["resources"] = {"limits": {"cpu": "3", "memory": "3Gi"}}
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": spec})


def config(scope: str) -> Any:
    return replace(default_config(), topology_manager_scope=scope)


class Deliveries:
    """A tap that keeps every delivery."""

    def __init__(self) -> None:
        self.seen: list[Delivery] = []

    def record(self, delivery: Delivery) -> None:
        self.seen.append(delivery)


def files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in STATES}


def prepared(directory: Path, scope: str) -> tuple[Bus, Deliveries]:
    """A node on ``directory`` that already holds one pod, with a fresh bus and tap."""
    actors = build_actors(config(scope), topology(), FileCheckpointStore(directory))
    tap = Deliveries()
    bus = Bus(actors.all(), tap=tap)
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=make_pod("first", budget=False))))
    bus.run_until_idle()
    tap.seen.clear()
    return bus, tap


CASES = [("container", False), ("container", True), ("pod", False), ("pod", True)]
IDS = ["container-classic", "container-pod-level", "pod-classic", "pod-pod-level"]


@pytest.mark.parametrize(("scope", "budget"), CASES, ids=IDS)
def test_a_crash_at_any_delivery_leaves_each_file_before_or_after(tmp_path: Path, scope: str, budget: bool) -> None:
    target = make_pod("target", budget=budget)
    # The complete admission, to know the "after" files and how many deliveries it takes.
    full_dir = tmp_path / "full"
    bus, tap = prepared(full_dir, scope)
    before = files(full_dir)
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=target)))
    bus.run_until_idle()
    assert isinstance(bus.outbox[-1].msg, Admitted)
    after = files(full_dir)
    complete = Node.open(config(scope), topology(), FileCheckpointStore(full_dir)).cpu_state.assignments["target"]
    assert all(after[name] != before[name] for name in STATES), "the pod must change both files"
    steps = len(tap.seen)
    allocations = [d for d in tap.seen if isinstance(d.msg, AllocateRequest)]
    first_commit = next(i for i, d in enumerate(tap.seen) if isinstance(d.msg, Commit))
    if scope == "container" or not budget:
        # One allocation per container and provider: there is a "between two containers".
        assert len({d.msg.container for d in allocations}) == 3  # type: ignore[union-attr]

    for crash_after in range(steps + 1):
        directory = tmp_path / f"crash{crash_after}"
        bus, tap = prepared(directory, scope)
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=target)))
        for _ in range(crash_after):
            bus.step()
        del bus  # the process dies: only the files remain
        left = files(directory)
        for name in STATES:
            assert left[name] in (before[name], after[name]), f"{name} half-written after {crash_after} deliveries"
            if crash_after <= first_commit:
                assert left[name] == before[name], f"{name} written before the decision ({crash_after} deliveries)"
        # A node starts again from whatever the crash left.
        restarted = Node.open(config(scope), topology(), FileCheckpointStore(directory))
        assert restarted.cpu_state.assignments.get("target", {}) in ({}, complete)


@pytest.mark.parametrize(("scope", "budget"), CASES, ids=IDS)
def test_one_write_per_file_per_admission(scope: str, budget: bool) -> None:
    store = MemoryCheckpointStore()
    node = Node.open(config(scope), topology(), store)
    start = dict(store.saves)
    assert isinstance(node.admit(make_pod("target", budget=budget)), Admitted)
    assert {name: store.saves[name] - start.get(name, 0) for name in STATES} == {CPU_STATE: 1, MEMORY_STATE: 1}


def test_rejected_admission_writes_nothing() -> None:
    store = MemoryCheckpointStore()
    node = Node.open(config("container"), topology(), store)
    start = dict(store.saves)
    # a and b fit, then c asks for more CPUs than are left: a and b are rolled back.
    huge = Pod.from_dict({"metadata": {"name": "huge", "uid": "huge"}, "spec": {"containers": [
        {"name": "a", "resources": {"limits": {"cpu": "4", "memory": "1Gi"}}},
        {"name": "b", "resources": {"limits": {"cpu": "4", "memory": "1Gi"}}},
        {"name": "c", "resources": {"limits": {"cpu": "14", "memory": "1Gi"}}},
    ]}})
    assert not isinstance(node.admit(huge), Admitted)
    assert store.saves == start


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from test_commit import config, make_pod, topology
    from shim.actors.base import Envelope
    from shim.actors.stores import FileCheckpointStore
    from shim.messages import AdmitPod, AllocateRequest
    from shim.runtime.bus import Bus
    from shim.runtime.node import build_actors

    actors = build_actors(config("container"), topology(), FileCheckpointStore({directory!r}))

    class Killer:
        def record(self, delivery):
            message = delivery.msg
            # The CPU provider is about to allocate the second container: die, as in a power cut.
            if isinstance(message, AllocateRequest) and message.container == "b" and delivery.to == "cpu":
                os._exit(17)

    bus = Bus(actors.all(), tap=Killer())
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=make_pod("target", budget=False))))
    bus.run_until_idle()
    """
)


def test_a_killed_process_leaves_nothing_of_the_pod(tmp_path: Path) -> None:
    tests = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, *sys.path]))
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=tests, directory=str(tmp_path))], env=env, capture_output=True
    )
    assert child.returncode == 17, child.stderr.decode()
    text = (tmp_path / CPU_STATE).read_text()
    state = cpu_checkpoint.decode(text, "static")
    assert "target" not in state.assignments  # container a was allocated in memory only
    assert Node.open(config("container"), topology(), FileCheckpointStore(tmp_path)).cpu_state.assignments == {}


def test_one_directory_sync_per_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shim.actors import stores

    synced: list[str] = []
    monkeypatch.setattr(stores, "_fsync_directory", synced.append)
    store = FileCheckpointStore(tmp_path)
    node = Node.open(config("pod"), topology(), store)
    synced.clear()
    assert isinstance(node.admit(make_pod("target", budget=True)), Admitted)
    assert files(tmp_path)  # both files renamed into place...
    assert synced == [str(tmp_path)]  # ...and their directory synced once, before admit() returned
    store.save("other", "x")  # outside a decision every save syncs at once
    assert synced == [str(tmp_path)] * 2
