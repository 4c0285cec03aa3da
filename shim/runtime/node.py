"""The node: the actors built from a configuration, a topology and a state store, driven by the
deterministic bus.

This is what the CLI, the hook's embedded mode and replay use; the daemon builds the same
actors with :func:`build_actors` and runs them on trio instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from shim.actors.arbiter import CGROUP_WRITER, ArbiterActor, NodeDefaults
from shim.actors.arbiter import NAME as ARBITER
from shim.actors.base import Actor, CheckpointStore, Envelope
from shim.actors.cgroup_writer import CgroupBackend, CgroupWriterActor, RecordingCgroupBackend
from shim.actors.cpu_manager import CPUManager
from shim.actors.memory_manager import MemoryManager
from shim.actors.provider import ProviderActor
from shim.config import Config, config_from_mapping
from shim.cpuset import CPUSet
from shim.messages import (
    AdmitPod,
    Admitted,
    Applied,
    ApplyFailed,
    ContainerCreated,
    Message,
    Rejected,
    RemoveContainer,
    RemovePod,
    TopologyWire,
)
from shim.pod import Pod
from shim.runtime.bus import Bus, Tap
from shim.topology.model import Topology

if TYPE_CHECKING:
    # Only trace_header() needs the recorder at run time: the hook never records.
    from shim.runtime.recorder import TraceHeader

CPU = "cpu"
MEMORY = "memory"
PROVIDERS = (CPU, MEMORY)
CPU_STATE = "cpu_manager_state"
MEMORY_STATE = "memory_manager_state"


class NodeStartError(RuntimeError):
    """The node cannot start: bad configuration for this machine, or a state file that is
    corrupt or does not match the machine (the kubelet's start-up errors, naming the file)."""


# A msgspec Struct rather than a dataclass: the OCI hook imports this module on every container
# start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class NodeActors(msgspec.Struct, weakref=True):
    """The actors of one node and the managers inside the two providers."""

    arbiter: ArbiterActor
    cpu: ProviderActor
    memory: ProviderActor
    cgroups: CgroupWriterActor
    cpu_manager: CPUManager
    memory_manager: MemoryManager
    store: CheckpointStore | None = None

    def all(self) -> list[Actor]:
        return [self.arbiter, self.cpu, self.memory, self.cgroups]


def build_actors(
    config: Config,
    topology: Topology,
    store: CheckpointStore,
    *,
    cgroup_backend: CgroupBackend | None = None,
    state_dir: str = "/var/lib/kubelet",
) -> NodeActors:
    """Build and start the actors: restore both managers' state from ``store`` (kubelet formats)
    and validate it against this machine; a fresh state is written at once, as the kubelet does.
    Raises NodeStartError with the kubelet's message."""
    from shim.checkpoint import CheckpointError
    from shim.cpu.errors import CPUManagerError
    from shim.memory.errors import MemoryManagerError
    from shim.topology_manager.options import TopologyManagerError

    try:
        cpu_manager, cpu_text = _cpu_manager(config, topology, store, state_dir)
        memory_manager, memory_text = _memory_manager(config, topology, store, state_dir)
        arbiter = _arbiter(config, topology)
    except (CheckpointError, CPUManagerError, MemoryManagerError, TopologyManagerError) as error:
        raise NodeStartError(str(error)) from error
    cpu = ProviderActor(CPU, cpu_manager, store)
    memory = ProviderActor(MEMORY, memory_manager, store)
    cpu.mark_saved(cpu_text)
    memory.mark_saved(memory_text)
    # start() may have completed a fresh state (e.g. the default cpuset): write it now.
    cpu.persist()
    memory.persist()
    # The arbiter addresses its Apply messages to CGROUP_WRITER, so the writer must carry that name.
    writer = CgroupWriterActor(
        cgroup_backend if cgroup_backend is not None else RecordingCgroupBackend(), name=CGROUP_WRITER
    )
    return NodeActors(arbiter, cpu, memory, writer, cpu_manager, memory_manager, store)


def _cpu_manager(
    config: Config, topology: Topology, store: CheckpointStore, state_dir: str
) -> tuple[CPUManager, str | None]:
    from shim.cpu import checkpoint
    from shim.cpu.static import StaticPolicy

    gate = config.gate("PodLevelResourceManagers")
    text = store.load(CPU_STATE)
    state, fresh = checkpoint.restore(
        text, config.cpu_manager_policy, pod_level_gate=gate, path=f"{state_dir}/{CPU_STATE}"
    )
    policy = None
    if config.cpu_manager_policy == "static":
        policy = StaticPolicy(
            topology.cpu,
            reserved_cpus=config.reserved_system_cpus,
            num_reserved_cpus=config.num_reserved_cpus,
            options=config.cpu_manager_policy_options,
            feature_gates=config.feature_gates,
            topology_manager_policy=config.topology_manager_policy,
            topology_manager_scope=config.topology_manager_scope,
        )
        policy.start(state)
    shared = topology.allowed_cpus & topology.cpu.all_cpus
    manager = CPUManager(policy, state, shared_cpus=shared or topology.cpu.all_cpus, pod_level_gate=gate)
    return manager, (None if fresh is not None else text)


def _memory_manager(
    config: Config, topology: Topology, store: CheckpointStore, state_dir: str
) -> tuple[MemoryManager, str | None]:
    from shim.memory import checkpoint
    from shim.memory.static import StaticPolicy

    gate = config.gate("PodLevelResourceManagers")
    text = store.load(MEMORY_STATE)
    state, fresh = checkpoint.restore(
        text, config.memory_manager_policy, pod_level_gate=gate, path=f"{state_dir}/{MEMORY_STATE}"
    )
    policy = None
    if config.memory_manager_policy == "Static":
        reserved = [{"numaNode": node, "limits": limits} for node, limits in sorted(config.reserved_memory.items())]
        policy = StaticPolicy.from_config(
            topology, reserved, config.node_allocatable_reservation(), feature_gates=config.feature_gates
        )
        policy.start(state)
    allowed = list(topology.allowed_mems) or topology.numa_ids
    manager = MemoryManager(policy, state, allowed_mems=allowed, pod_level_gate=gate)
    return manager, (None if fresh is not None else text)


def _arbiter(config: Config, topology: Topology) -> ArbiterActor:
    from shim.topology_manager.manager import new_manager

    distances = topology.distance_rows()
    manager = new_manager(
        topology.numa_ids if topology.cpu.num_numa_nodes else [0],
        config.topology_manager_policy,
        config.topology_manager_scope,
        config.topology_manager_policy_options,
        distances=distances,
        feature_gates=config.feature_gates,
    )
    allowed_cpus = topology.allowed_cpus & topology.cpu.all_cpus
    allowed_mems = topology.allowed_mems or CPUSet.of(topology.numa_ids)
    return ArbiterActor(
        manager.scope.policy,
        config.topology_manager_scope,
        PROVIDERS,
        defaults=NodeDefaults(cpus=str(allowed_cpus or topology.cpu.all_cpus), mems=str(allowed_mems)),
        feature_gates=config.feature_gates,
    )


Outcome = Admitted | Rejected


class Node:
    """A node driven by the deterministic bus: one call, one decision, state persisted."""

    def __init__(self, actors: NodeActors, *, tap: Tap | None = None) -> None:
        self.actors = actors
        self.bus = Bus(actors.all(), tap=tap)

    @classmethod
    def open(
        cls,
        config: Config,
        topology: Topology,
        store: CheckpointStore,
        *,
        cgroup_backend: CgroupBackend | None = None,
        tap: Tap | None = None,
        state_dir: str = "/var/lib/kubelet",
    ) -> Node:
        return cls(build_actors(config, topology, store, cgroup_backend=cgroup_backend, state_dir=state_dir), tap=tap)

    def _run(self, to: str, message: Message) -> list[Message]:
        mark = len(self.bus.outbox)
        self.bus.send(Envelope(to=to, message=message))
        # One decision renames both state files: a file store syncs their directory once, before
        # the outcome is returned.
        batch = getattr(self.actors.store, "one_directory_sync", None)
        with batch() if batch is not None else contextlib.nullcontext():
            self.bus.run_until_idle(limit=100_000)
        return [delivery.msg for delivery in self.bus.outbox[mark:]]

    def admit(self, pod: Pod) -> Outcome:
        for message in self._run(ARBITER, AdmitPod(pod=pod)):
            if isinstance(message, Admitted | Rejected) and message.pod_uid == pod.uid:
                return message
        raise RuntimeError(f"admission of pod {pod.uid} produced no outcome")

    def remove_container(self, pod_uid: str, container: str) -> None:
        self._run(ARBITER, RemoveContainer(pod_uid=pod_uid, container=container))

    def remove_pod(self, pod_uid: str) -> None:
        self._run(ARBITER, RemovePod(pod_uid=pod_uid))

    def container_created(
        self, pod_uid: str, container: str, cgroup: str, pid: int | None = None
    ) -> Applied | ApplyFailed:
        created = ContainerCreated(pod_uid=pod_uid, container=container, cgroup=cgroup, pid=pid)
        for message in self._run(ARBITER, created):
            if isinstance(message, Applied | ApplyFailed):
                return message
        raise RuntimeError(f"applying container {container!r} of pod {pod_uid} produced no outcome")

    # views ------------------------------------------------------------------------------------
    @property
    def cpu_state(self) -> Any:
        return self.actors.cpu_manager.state

    @property
    def memory_state(self) -> Any:
        return self.actors.memory_manager.state


def trace_header(config: Config, topology: Topology, store: CheckpointStore) -> TraceHeader:
    """A trace header that rebuilds this node exactly: configuration, topology and the state
    files as they are before the first message."""
    from shim.runtime.recorder import TraceHeader

    return TraceHeader(
        config={
            "kubelet": config.to_kubelet_config(),
            "state": {CPU_STATE: store.load(CPU_STATE), MEMORY_STATE: store.load(MEMORY_STATE)},
        },
        topology=TopologyWire.from_topology(topology),
    )


def actor_factory(*, cgroup_backend: Callable[[], CgroupBackend] | None = None) -> Callable[[TraceHeader], list[Actor]]:
    """The replay factory: fresh actors from a trace header (state files in memory)."""
    from shim.actors.stores import MemoryCheckpointStore

    def factory(header: TraceHeader) -> list[Actor]:
        if header.config is None or header.topology is None:
            raise ValueError("trace header has no config or topology: not a podshim node trace")
        config = config_from_mapping(header.config["kubelet"], source="trace header")
        files = {name: text for name, text in (header.config.get("state") or {}).items() if text is not None}
        backend = cgroup_backend() if cgroup_backend is not None else None
        actors = build_actors(
            config, header.topology.to_topology(), MemoryCheckpointStore(files), cgroup_backend=backend
        )
        return actors.all()

    return factory
