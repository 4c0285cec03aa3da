"""The Static policy of the kubelet's Memory manager, with KEP-5526 pod-level resources.

The policy is a plain object over a ``MemoryState`` passed in by the caller: it decides hints,
allocations and releases and writes them into that state. A call that fails raises a
MemoryManagerError and leaves the state as it was. The only state the policy keeps itself is the
kubelet's in-memory record of memory that finished init containers left for later containers
(``reusable``), which is not checkpointed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shim.memory.errors import MemoryManagerError, StateValidationError
from shim.memory.hints import (
    HintCache,
    Hints,
    best_hint,
    calculate_hints,
    mask_of,
    passing_masks,
    regenerate_hints,
    requests_memory,
)
from shim.memory.machine import (
    NodeMemory,
    default_machine_state,
    machine_states_equal,
    nodes_from_topology,
    release,
    replay,
    reserve,
    system_reserved_memory,
)
from shim.memory.podlevel import partition, validate_pod_scope
from shim.memory.requests import (
    Gates,
    Requests,
    container_requests,
    is_guaranteed,
    is_pod_level,
    pod_level_unsupported,
    pod_requests,
)
from shim.memory.state import MEMORY, Block, MachineState, MemoryState, copy_machine_state
from shim.pod import Container, Pod
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint

if TYPE_CHECKING:
    from shim.topology.model import Topology

POLICY_NAME = "Static"


def _container(pod: Pod, container: Container | str) -> Container:
    return pod.container(container) if isinstance(container, str) else container


def _fits(machine: MachineState, bits: Sequence[int], requests: Requests) -> bool:
    """isAffinitySatisfyRequest: the mask's free memory holds every request (reuse not counted)."""
    for name, request in requests.items():
        free = 0
        for node_id in bits:
            node = machine.get(node_id)
            table = None if node is None else node.memory_map.get(name)
            free += 0 if table is None else table.free
        if free < request:
            return False
    return True


def _violates_groups(machine: MachineState, bits: Sequence[int]) -> bool:
    """A node used by single-node allocations cannot join a group, nor a node of another group."""
    if len(bits) == 1:
        return False
    for node_id in bits:
        node = machine[node_id]
        if node.number_of_assignments == 0:
            continue
        cells = node.cells or []
        if len(cells) == 1 or sorted(cells) != list(bits):
            return True
    return False


def mems_for(
    state: MemoryState, pod: Pod, container: Container | str, allowed: Iterable[int] | None = None
) -> list[int]:
    """The NUMA nodes (cpuset.mems) a container gets: those of its blocks; a container of a
    pod-level pod without blocks of its own gets the pod's nodes; any other container (host
    isolation) gets every allowed node (default: every node of the machine state)."""
    name = _container(pod, container).name
    blocks = state.get_blocks(pod.uid, name) or state.pod_entries.get(pod.uid) or []
    nodes = {bit for block in blocks for bit in block.numa_affinity or ()}
    if nodes:
        return sorted(nodes)
    return sorted(state.machine_state if allowed is None else allowed)


class StaticPolicy:
    """The kubelet's Static memory policy (spec/memory-manager.md §2-§8, §10).

    ``nodes`` describe the machine (memory and huge pages per NUMA node); ``reserved_memory``
    is the converted reservedMemory configuration, ``{numa id: {resource: bytes}}``;
    ``feature_gates`` may set ``PodLevelResources`` and ``PodLevelResourceManagers``
    (kubelet defaults otherwise: on and off).
    """

    name = POLICY_NAME

    def __init__(
        self,
        nodes: Iterable[NodeMemory] = (),
        *,
        reserved_memory: Mapping[int, Mapping[str, int]],
        feature_gates: Mapping[str, bool] | None = None,
        allowed_nodes: Iterable[int] | None = None,
    ) -> None:
        if sum(node.get(MEMORY, 0) for node in reserved_memory.values()) <= 0:
            raise MemoryManagerError("[memorymanager] you should specify the system reserved memory")
        self.nodes = tuple(nodes)
        self.system_reserved = {int(node): dict(limits) for node, limits in reserved_memory.items()}
        self.gates = Gates.of(feature_gates)
        self.allowed_nodes = sorted(allowed_nodes) if allowed_nodes is not None else [node.id for node in self.nodes]
        # pod uid -> mask value -> resource -> bytes left by the pod's finished init containers
        self.reusable: dict[str, dict[int, dict[str, int]]] = {}
        self._cache = HintCache()

    @classmethod
    def from_topology(
        cls,
        topology: Topology,
        reserved_memory: Mapping[int, Mapping[str, int]],
        *,
        feature_gates: Mapping[str, bool] | None = None,
    ) -> StaticPolicy:
        return cls(
            nodes_from_topology(topology),
            reserved_memory=reserved_memory,
            feature_gates=feature_gates,
            allowed_nodes=list(topology.allowed_mems),
        )

    @classmethod
    def from_config(
        cls,
        topology: Topology,
        reserved_memory: Sequence[Mapping[str, Any]],
        node_allocatable_reservation: Mapping[str, Any],
        *,
        feature_gates: Mapping[str, bool] | None = None,
    ) -> StaticPolicy:
        """From the kubelet configuration's ``reservedMemory`` list (``{numaNode, limits}``) and
        the memory that Node Allocatable reserves; raises ReservedMemoryError like the kubelet."""
        converted = system_reserved_memory(topology.numa_ids, node_allocatable_reservation, reserved_memory)
        return cls.from_topology(topology, converted, feature_gates=feature_gates)

    # start ------------------------------------------------------------------------------------

    def default_machine_state(self) -> MachineState:
        return default_machine_state(self.nodes, self.system_reserved)

    def start(self, state: MemoryState) -> None:
        """validateState: a fresh state gets the default machine state; a restored one must
        match the machine and its own assignments."""
        if not state.machine_state:
            if state.assignments:
                raise StateValidationError(
                    "[memorymanager] machine state can not be empty when it has memory assignments"
                )
            state.machine_state = self.default_machine_state()
            self._warm_hint_cache(state)
            return
        expected = self.default_machine_state()
        for pod_uid, containers in state.assignments.items():
            pod_blocks = state.pod_entries.get(pod_uid) if self.gates.pod_level_resource_managers else None
            if pod_blocks:
                # The pod's containers share one reservation: count it once (an entry without
                # containers is not counted, it is re-allocated at re-admission).
                replay(expected, pod_blocks, pod_uid, "")
                continue
            for name, blocks in containers.items():
                replay(expected, blocks, pod_uid, name)
        if not machine_states_equal(state.machine_state, expected):
            raise StateValidationError("[memorymanager] the expected machine state is different from the real one")
        self._warm_hint_cache(state)

    def _warm_hint_cache(self, state: MemoryState) -> None:
        # The first hint call on a many-node machine builds every node combination and its hint
        # objects (65,535 on 16 nodes, ~75 ms): pay it here rather than in the first admission.
        self._cache.warm(tuple(sorted(state.machine_state)))

    # hints ------------------------------------------------------------------------------------

    def _reusable_for(self, pod_uid: str) -> dict[int, dict[str, int]]:
        return self.reusable.get(pod_uid, {})

    def hints(self, state: MemoryState, pod: Pod, container: Container | str) -> Hints | None:
        """GetTopologyHints (container scope). None = no preference."""
        ctr = _container(pod, container)
        if not is_guaranteed(pod, self.gates) or pod_level_unsupported(pod, self.gates):
            return None
        try:
            requests = container_requests(pod, ctr, self.gates)
        except MemoryManagerError:
            return None
        if not requests and is_pod_level(pod, self.gates):
            return None  # a shared container of a pod-level pod: nothing exclusive (kubernetes#138770)
        blocks = state.get_blocks(pod.uid, ctr.name)
        if blocks is not None:
            return regenerate_hints(blocks, requests)
        return calculate_hints(state.machine_state, requests, self._reusable_for(pod.uid), self._cache)

    def pod_hints(self, state: MemoryState, pod: Pod) -> Hints | None:
        """GetPodTopologyHints (pod scope), restart-safe: an allocated pod gets back its nodes."""
        if not is_guaranteed(pod, self.gates):
            return None
        try:
            total = pod_requests(pod, self.gates)
        except MemoryManagerError:
            return None
        if pod_level_unsupported(pod, self.gates):
            return None
        if is_pod_level(pod, self.gates):
            try:
                validate_pod_scope(pod, total, self.gates)
            except MemoryManagerError:
                return {name: [] for name in total}
        if not total:
            return None
        pod_blocks = state.pod_entries.get(pod.uid)
        if pod_blocks is not None and is_pod_level(pod, self.gates):
            return regenerate_hints(pod_blocks, total)
        allocated = [
            blocks for ctr in pod.all_containers() if (blocks := state.get_blocks(pod.uid, ctr.name)) is not None
        ]
        if allocated:
            return self._regenerate_pod_hints(allocated, total)
        return calculate_hints(state.machine_state, total, self._reusable_for(pod.uid), self._cache)

    @staticmethod
    def _regenerate_pod_hints(allocated: list[list[Block]], total: Requests) -> Hints | None:
        """A pod whose containers already hold blocks (kubelet restart): its common mask, preferred.
        Container sizes differ from the pod total, so only the placement is compared."""
        masks = {mask_of(block.numa_affinity) for blocks in allocated for block in blocks}
        types = {block.type for blocks in allocated for block in blocks}
        if len(masks) != 1 or not types <= total.keys():
            return None
        hint = TopologyHint(Bitmask(masks.pop()), True)
        return {name: [hint] for name in total}

    # allocation -------------------------------------------------------------------------------

    def _choose_mask(
        self, machine: MachineState, pod_uid: str, requests: Requests, hint: TopologyHint | None
    ) -> Bitmask:
        """The hint to allocate on: the topology manager's, a default one when it has no
        affinity, extended when its nodes lack free memory (spec §5 steps 4-6)."""
        reusable = self._reusable_for(pod_uid)
        given_preferred = hint is not None and hint.preferred
        if hint is None or hint.affinity is None:
            table = passing_masks(machine, requests, reusable, self._cache)
            default = best_hint(table) if requests_memory(requests) else None
            if default is None:
                raise MemoryManagerError(
                    "[memorymanager] failed to get the default NUMA affinity, "
                    "no NUMA nodes with enough memory is available"
                )
            if not default.preferred and given_preferred:
                raise MemoryManagerError("[memorymanager] failed to find the default preferred hint")
            hint = default
        assert hint.affinity is not None
        bits = hint.affinity.bits()
        unknown = [bit for bit in bits if bit not in machine]
        if unknown:
            raise MemoryManagerError(
                f"[memorymanager] the topology hint uses NUMA node {unknown[0]} that does not exist"
            )
        if not _fits(machine, bits, requests):
            table = passing_masks(machine, requests, reusable, self._cache)
            extended = best_hint(table, containing=hint.affinity.value) if requests_memory(requests) else None
            if extended is None:
                raise MemoryManagerError(
                    "[memorymanager] failed to find NUMA nodes to extend the current topology hint"
                )
            if not extended.preferred and hint.preferred:
                raise MemoryManagerError("[memorymanager] failed to find the extended preferred hint")
            hint = extended
        assert hint.affinity is not None
        if _violates_groups(machine, hint.affinity.bits()):
            raise MemoryManagerError("[memorymanager] preferred hint violates NUMA node allocation")
        return hint.affinity

    def allocate(self, state: MemoryState, pod: Pod, container: Container | str, hint: TopologyHint | None) -> None:
        """Allocate (container scope, and pod scope without pod-level resources); idempotent."""
        ctr = _container(pod, container)
        if not is_guaranteed(pod, self.gates) or pod_level_unsupported(pod, self.gates):
            return
        existing = state.get_blocks(pod.uid, ctr.name)
        if existing is not None:
            self._note_reuse(pod.uid, ctr, existing)
            return
        requests = container_requests(pod, ctr, self.gates)
        if not requests and is_pod_level(pod, self.gates):
            return  # shares the node pool (kubernetes#138770)
        mask = self._choose_mask(state.machine_state, pod.uid, requests, hint)
        bits = mask.bits()
        machine = copy_machine_state(state.machine_state)
        blocks = []
        for name, size in requests.items():
            blocks.append(Block(list(bits), name, size))
            reused = self._reusable_for(pod.uid).get(mask.value, {}).get(name, 0)
            reserve(machine, bits, name, max(0, size - reused))
        self._note_reuse(pod.uid, ctr, blocks)
        state.machine_state = machine
        state.set_blocks(pod.uid, ctr.name, blocks)
        self._shrink_init_blocks(state, pod, ctr, blocks)

    def _note_reuse(self, pod_uid: str, container: Container, blocks: Sequence[Block]) -> None:
        """updatePodReusableMemory: a regular init container's blocks become reusable; any other
        container consumes reusable memory on its mask."""
        for other in [uid for uid in self.reusable if uid != pod_uid]:
            del self.reusable[other]
        per_mask = self.reusable.setdefault(pod_uid, {})
        if container.kind == "init":
            for block in blocks:
                entry = per_mask.setdefault(mask_of(block.numa_affinity), {})
                if block.size > entry.get(block.type, 0):
                    entry[block.type] = block.size
            return
        for block in blocks:
            entry = per_mask.get(mask_of(block.numa_affinity), {})
            left = entry.get(block.type, 0)
            if left:
                entry[block.type] = 0 if block.size >= left else left - block.size

    @staticmethod
    def _shrink_init_blocks(state: MemoryState, pod: Pod, container: Container, blocks: Sequence[Block]) -> None:
        """updateInitContainersMemoryBlocks: memory reused from earlier regular init containers
        is taken off their blocks, so the blocks of a pod add up to what it holds."""
        for block in blocks:
            size = block.size
            mask = mask_of(block.numa_affinity)
            for init in pod.init_containers:
                if init.name == container.name:
                    break
                if init.is_sidecar:
                    continue
                if size == 0:
                    break
                for earlier in state.get_blocks(pod.uid, init.name) or []:
                    if earlier.size == 0 or earlier.type != block.type or mask_of(earlier.numa_affinity) != mask:
                        continue
                    taken = min(earlier.size, size)
                    earlier.size -= taken
                    size -= taken

    def allocate_pod(self, state: MemoryState, pod: Pod, hint: TopologyHint | None) -> None:
        """Pod scope: AllocatePod for a pod-level pod (one bubble, partitioned); for any other pod,
        Allocate of every container in order with the same hint, all or nothing."""
        if not is_guaranteed(pod, self.gates) or pod_level_unsupported(pod, self.gates):
            return
        if not is_pod_level(pod, self.gates):
            snapshot, reusable = (
                state.copy(),
                {uid: {m: dict(r) for m, r in v.items()} for uid, v in self.reusable.items()},
            )
            try:
                for ctr in pod.all_containers():
                    self.allocate(state, pod, ctr, hint)
            except MemoryManagerError:
                state.machine_state, state.assignments, state.pod_entries = (
                    snapshot.machine_state,
                    snapshot.assignments,
                    snapshot.pod_entries,
                )
                self.reusable = reusable
                raise
            return
        try:
            total = pod_requests(pod, self.gates)
        except MemoryManagerError:
            return  # the kubelet logs this and admits the pod unaligned
        pod_blocks = state.pod_entries.get(pod.uid)
        has_containers = any(state.get_blocks(pod.uid, ctr.name) is not None for ctr in pod.all_containers())
        if pod_blocks is not None and has_containers:
            self._restore_pod(state, pod, total, pod_blocks)
            return
        validate_pod_scope(pod, total, self.gates)
        mask = self._choose_mask(state.machine_state, pod.uid, total, hint)
        bits = mask.bits()
        parts = partition(pod, total, bits, self.gates)
        machine = copy_machine_state(state.machine_state)
        for name, size in total.items():
            reserve(machine, bits, name, size)
        # An entry without container blocks (a crash after its write) is replaced, never trusted.
        state.pod_entries[pod.uid] = [Block(list(bits), name, size) for name, size in total.items()]
        for ctr in pod.all_containers():
            state.set_blocks(pod.uid, ctr.name, parts.blocks_for(ctr.name))
        state.machine_state = machine

    def _restore_pod(self, state: MemoryState, pod: Pod, total: Requests, pod_blocks: list[Block]) -> None:
        """Re-admission of an allocated pod-level pod (kubelet restart): keep its reservation;
        a long-running container missing from the state gets its share of the existing bubble."""
        bits = next((block.numa_affinity for block in pod_blocks if block.numa_affinity), None)
        if bits is None:
            return
        parts = partition(pod, total, bits, self.gates)
        for ctr in pod.all_containers():
            if ctr.kind != "init" and state.get_blocks(pod.uid, ctr.name) is None:
                state.set_blocks(pod.uid, ctr.name, parts.blocks_for(ctr.name))

    # removal ----------------------------------------------------------------------------------

    def remove_container(self, state: MemoryState, pod_uid: str, name: str) -> None:
        """RemoveContainer; for a pod-level pod the bubble returns to the node with its last container."""
        pod_blocks = state.pod_entries.get(pod_uid) if self.gates.pod_level_resource_managers else None
        if pod_blocks is not None:
            state.delete(pod_uid, name)
            if not state.assignments.get(pod_uid):
                self._release(state, pod_blocks)
                del state.pod_entries[pod_uid]
            return
        blocks = state.get_blocks(pod_uid, name)
        if blocks is None:
            return
        state.delete(pod_uid, name)
        self._release(state, blocks)

    @staticmethod
    def _release(state: MemoryState, blocks: Iterable[Block]) -> None:
        machine = copy_machine_state(state.machine_state)
        for block in blocks:
            release(machine, block)
        state.machine_state = machine

    def remove_pod(self, state: MemoryState, pod_uid: str) -> None:
        """Release everything a pod holds (pod removal, or rollback of a rejected admission)."""
        for name in list(state.assignments.get(pod_uid, {})):
            self.remove_container(state, pod_uid, name)
        # An entry without containers never reached the machine state (see start()).
        state.pod_entries.pop(pod_uid, None)
        self.reusable.pop(pod_uid, None)

    def add_container(self, state: MemoryState, pod: Pod, container: Container | str) -> None:
        """AddContainer: a container starts, so every regular init container declared before it has finished."""
        ctr = _container(pod, container)
        for init in pod.init_containers:
            if init.name == ctr.name:
                break
            if not init.is_sidecar:
                self.remove_container(state, pod.uid, init.name)

    def remove_stale(self, state: MemoryState, active_pods: Iterable[Pod]) -> None:
        """removeStaleState: forget containers of pods that are no longer active."""
        active = {pod.uid: {ctr.name for ctr in pod.all_containers()} for pod in active_pods}
        for pod_uid, containers in list(state.assignments.items()):
            for name in list(containers):
                if name not in active.get(pod_uid, set()):
                    self.remove_container(state, pod_uid, name)
        for pod_uid in [uid for uid in state.pod_entries if uid not in active and uid not in state.assignments]:
            del state.pod_entries[pod_uid]

    def mems_for(self, state: MemoryState, pod: Pod, container: Container | str) -> list[int]:
        """The cpuset.mems of a container (see the module-level ``mems_for``)."""
        return mems_for(state, pod, container, self.allowed_nodes or None)
