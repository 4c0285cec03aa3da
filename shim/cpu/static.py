"""The static CPU manager policy: reserved CPUs, per-container allocation, hints, removal, Start.

Spec: cpu-manager.md §4–§8, §9.6, §11.6. KEP-5526 pod-level allocation lives in pod_level.py;
this class delegates to it. The policy object holds only configuration, the init-container
reuse map (``cpusToReuse``, not checkpointed, like the kubelet's) and metrics counters; all CPU
bookkeeping is in the CPUState passed to every call.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from shim.cpu import pod_level
from shim.cpu.accumulator import Strategy
from shim.cpu.assign import take_by_topology
from shim.cpu.details import topology_index
from shim.cpu.errors import AllocationError, PolicyConfigError, SMTAlignmentError, StateValidationError
from shim.cpu.hints import cpu_topology_hints
from shim.cpu.isolation import CPUQuota, IsolationLevel, container_cpu_quota, isolation_level, pod_cpu_quota
from shim.cpu.options import (
    DEFAULT_OPTION_MATURITY,
    DISABLE_CPU_QUOTA_WITH_EXCLUSIVE_CPUS,
    POD_LEVEL_RESOURCE_MANAGERS,
    FeatureGates,
    Maturity,
    parse_policy_options,
    validate_policy_options,
)
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet
from shim.pod import CPU, Container, Pod
from shim.topology.model import CPUTopology
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints

# One resource's hints: the kubelet's explicit list, or the same list as a SupersetHints.
CPUHints = list[TopologyHint] | SupersetHints
Hints = dict[str, CPUHints]


# A msgspec Struct rather than a dataclass: the OCI hook imports this module on every container
# start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class CPUMetrics(msgspec.Struct, weakref=True):
    """The CPU manager's counters as plain data (exported by the frontends, not here).

    ``allocations`` / ``allocation_errors`` are keyed by source (``node`` | ``pod``);
    ``container_assignments`` by type (``node_exclusive`` | ``pod_exclusive`` | ``pod_shared``).
    """

    pinning_requests: int = 0
    pinning_errors: int = 0
    allocations: dict[str, int] = msgspec.field(default_factory=dict)
    allocation_errors: dict[str, int] = msgspec.field(default_factory=dict)
    container_assignments: dict[str, int] = msgspec.field(default_factory=dict)

    def count(self, counter: dict[str, int], key: str, amount: int = 1) -> None:
        counter[key] = counter.get(key, 0) + amount


class StaticPolicy:
    """The kubelet's ``static`` CPU manager policy (NewStaticPolicy + its methods).

    ``compact_hints``: True answers hint requests with a :class:`SupersetHints` (same hints,
    described by their minimal masks), False with the kubelet's explicit list, None (default)
    compactly on machines with more than ``COMPACT_HINTS_ABOVE_NUMA_NODES`` (8) NUMA nodes,
    whatever the number of minimal masks.
    """

    name = "static"

    def __init__(
        self,
        topology: CPUTopology,
        *,
        reserved_cpus: CPUSet | None = None,
        num_reserved_cpus: int = 0,
        options: Mapping[str, str] | None = None,
        feature_gates: Mapping[str, bool] | None = None,
        topology_manager_policy: str = "best-effort",
        topology_manager_scope: str = "container",
        option_maturity: Mapping[str, Maturity] = DEFAULT_OPTION_MATURITY,
        compact_hints: bool | None = None,
    ) -> None:
        self.topology = topology
        self.index = topology_index(topology)
        self.compact_hints = compact_hints
        self.gates = FeatureGates.of(feature_gates)
        self.options = parse_policy_options(options, self.gates, option_maturity)
        validate_policy_options(self.options, topology, topology_manager_policy)
        self.topology_manager_policy = topology_manager_policy
        self.topology_manager_scope = topology_manager_scope
        self.cpu_group_size = topology.cpus_per_core
        if reserved_cpus is not None and len(reserved_cpus) > 0:
            reserved = reserved_cpus
        else:
            try:
                reserved = self.take(topology.all_cpus, num_reserved_cpus)
            except AllocationError:
                reserved = CPUSet()
        if len(reserved) != num_reserved_cpus:
            raise PolicyConfigError(
                f"[cpumanager] unable to reserve the required amount of CPUs (size of {reserved} "
                f"did not equal {num_reserved_cpus})"
            )
        self.reserved_cpus = reserved
        self.reserved_physical_cpus = CPUSet(self.index.full_cores(reserved.mask))
        self.cpus_to_reuse: dict[str, CPUSet] = {}
        self.metrics = CPUMetrics()

    # pools --------------------------------------------------------------------------------------
    def all_cpus(self) -> CPUSet:
        """Every CPU the policy manages: all CPUs, minus reserved with strict reservation."""
        cpus = self.topology.all_cpus
        return cpus - self.reserved_cpus if self.options.strict_cpu_reservation else cpus

    def available_cpus(self, state: CPUState) -> CPUSet:
        return state.default_cpuset - self.reserved_cpus

    def available_physical_cpus(self, state: CPUState) -> CPUSet:
        return state.default_cpuset - self.reserved_physical_cpus

    def allocatable_cpus(self) -> CPUSet:
        return self.topology.all_cpus - self.reserved_cpus

    # eligibility --------------------------------------------------------------------------------
    def is_pod_level(self, pod: Pod) -> bool:
        """KEP-5526 applies: both gates on and the pod sets pod-level cpu or memory."""
        return self.gates.pod_level_managers and pod.has_pod_level_resources()

    def guaranteed_cpus(self, pod: Pod, container: Container) -> int:
        """Exclusive CPUs the container qualifies for (0 = shared pool), spec §5.2."""
        if pod.qos_class(pod_level_resources=self.gates.pod_level_resources) != "Guaranteed":
            return 0
        if (self.gates.enabled(POD_LEVEL_RESOURCE_MANAGERS) and pod.has_pod_level_resources()
                and not container.is_guaranteed_equivalent()):
            return 0
        return container.integral_cpus()

    def pod_guaranteed_cpus(self, pod: Pod) -> int:
        """The pod's exclusive CPU budget, spec §5.3."""
        if self.is_pod_level(pod):
            if pod.qos_class(pod_level_resources=self.gates.pod_level_resources) != "Guaranteed":
                return 0
            assert pod.resources is not None
            millis = pod.resources.requests.get(CPU, 0)
            return millis // 1000 if millis % 1000 == 0 else 0
        init_max = 0
        sidecar_sum = 0
        for container in pod.init_containers:
            if CPU not in container.resources.requests:
                continue
            cpus = self.guaranteed_cpus(pod, container)
            if container.is_sidecar:
                sidecar_sum += cpus
            elif sidecar_sum + cpus > init_max:
                init_max = sidecar_sum + cpus
        app_sum = sum(self.guaranteed_cpus(pod, c) for c in pod.containers if CPU in c.resources.requests)
        return max(init_max, app_sum + sidecar_sum)

    # allocation primitives ----------------------------------------------------------------------
    def take(self, available: CPUSet, count: int) -> CPUSet:
        """The policy's takeByTopology: options pick the algorithm (spec §7.1)."""
        strategy: Strategy = "spread" if self.options.distribute_cpus_across_cores else "packed"
        if self.options.distribute_cpus_across_numa:
            group = self.cpu_group_size if self.options.full_physical_cpus_only else 1
            return take_by_topology(self.topology, available, count, strategy=strategy,
                                    distribute_across_numa=True, cpu_group_size=group)
        return take_by_topology(self.topology, available, count, strategy=strategy,
                                prefer_uncore_cache=self.options.prefer_align_by_uncore_cache)

    def aligned_cpus(self, affinity: Bitmask, allocatable: CPUSet) -> CPUSet:
        """CPUs of ``allocatable`` on the hint's NUMA nodes (whole sockets with align-by-socket)."""
        numas = affinity.bits()
        if self.options.align_by_socket:
            mask = self.index.cpus_in_sockets(self.index.sockets_of_numas(numas))
        else:
            mask = self.index.cpus_in_numas(numas)
        return CPUSet(allocatable.mask & mask)

    def select_cpus(self, state: CPUState, count: int, affinity: Bitmask | None, reusable: CPUSet) -> CPUSet:
        """allocateCPUs without touching the state: hint-aligned CPUs first, then the rest."""
        allocatable = self.available_cpus(state) | reusable
        result = CPUSet()
        if affinity is not None:
            aligned = self.aligned_cpus(affinity, allocatable)
            result = self.take(aligned, min(count, len(aligned)))
        return result | self.take(allocatable - result, count - len(result))

    def allocate_cpus(self, state: CPUState, count: int, affinity: Bitmask | None,
                      reusable: CPUSet | None = None) -> CPUSet:
        """allocateCPUs (spec §6.3): pick, then remove the CPUs from the default set."""
        result = self.select_cpus(state, count, affinity, reusable or CPUSet())
        state.default_cpuset = state.default_cpuset - result
        return result

    def check_smt_alignment(self, state: CPUState, count: int) -> None:
        """enforceSMTAlignment for ``full-pcpus-only`` (spec §6.2)."""
        if not self.options.full_physical_cpus_only:
            return
        group = self.cpu_group_size
        if group == 0 or count % group != 0:
            raise SMTAlignmentError(count, group)
        available = len(self.available_physical_cpus(state))
        if count > available:
            raise SMTAlignmentError(count, group, available, caused_by_physical_cpus=True)

    def update_cpus_to_reuse(self, pod: Pod, container: Container, cpus: CPUSet) -> None:
        """Only one pod is remembered; regular init containers' CPUs become reusable."""
        for uid in [uid for uid in self.cpus_to_reuse if uid != pod.uid]:
            del self.cpus_to_reuse[uid]
        reusable = self.cpus_to_reuse.get(pod.uid, CPUSet())
        if container.kind == "init":
            self.cpus_to_reuse[pod.uid] = reusable | cpus
        else:
            self.cpus_to_reuse[pod.uid] = reusable - cpus

    # policy entry points ------------------------------------------------------------------------
    def start(self, state: CPUState) -> None:
        """validateState (spec §11.6); initialises an empty state. Raises StateValidationError."""
        all_cpus = self.all_cpus()
        default = state.default_cpuset
        if not default:
            if state.assignments:
                raise StateValidationError("default cpuset cannot be empty")
            state.default_cpuset = all_cpus
            return
        reserved = self.reserved_cpus
        if self.options.strict_cpu_reservation:
            if reserved & default:
                raise StateValidationError(
                    f'some of strictly reserved cpus: "{reserved & default}" are present in defaultCpuSet: "{default}"'
                )
        elif not reserved.is_subset_of(default):
            raise StateValidationError(f'not all reserved cpus: "{reserved}" are present in defaultCpuSet: "{default}"')
        known = default
        for pod_uid, containers in state.assignments.items():
            for name, cpus in containers.items():
                if cpus & default:
                    raise StateValidationError(
                        f'pod: {pod_uid}, container: {name} cpuset: "{cpus}" overlaps with default cpuset "{default}"'
                    )
                known = known | cpus
        if self.gates.enabled(POD_LEVEL_RESOURCE_MANAGERS):
            for cpus in state.pod_entries.values():
                known = known | cpus
        if known != all_cpus:
            raise StateValidationError(
                f'current set of available CPUs "{all_cpus}" doesn\'t match with CPUs in state "{known}"'
            )

    def allocate(self, state: CPUState, pod: Pod, container: Container, hint: TopologyHint | None = None) -> None:
        """Allocate (spec §6.1): exclusive CPUs for one Guaranteed container, else nothing."""
        count = self.guaranteed_cpus(pod, container)
        if count == 0:
            return
        if pod.has_pod_level_resources() and not self.gates.pod_level_managers:
            return
        self.metrics.pinning_requests += 1
        try:
            self.check_smt_alignment(state, count)
            found = state.get_cpuset(pod.uid, container.name)
            if found is not None:
                self.update_cpus_to_reuse(pod, container, found)
                return
            affinity = hint.affinity if hint is not None else None
            cpus = self.allocate_cpus(state, count, affinity, self.cpus_to_reuse.get(pod.uid))
        except Exception:
            self.metrics.pinning_errors += 1
            self.metrics.count(self.metrics.allocation_errors, "node")
            raise
        state.set_cpuset(pod.uid, container.name, cpus)
        self.update_cpus_to_reuse(pod, container, cpus)
        self.metrics.count(self.metrics.allocations, "node")
        self.metrics.count(self.metrics.container_assignments, "node_exclusive")

    def allocate_pod(self, state: CPUState, pod: Pod, hint: TopologyHint | None = None) -> None:
        """AllocatePod (pod scope): the pod's bubble and its partition, or, for a pod without
        pod-level resources, every container in order; all or nothing."""
        pod_level.allocate_pod(self, state, pod, hint)

    def remove_container(self, state: CPUState, pod_uid: str, name: str) -> None:
        """RemoveContainer (spec §9.6)."""
        released = state.get_cpuset(pod_uid, name)
        if released is None:
            return
        siblings = CPUSet()
        for other, cpus in state.assignments.get(pod_uid, {}).items():
            if other != name:
                siblings = siblings | cpus
        state.delete(pod_uid, name)
        if self.gates.enabled(POD_LEVEL_RESOURCE_MANAGERS) and pod_uid in state.pod_entries:
            if not state.assignments.get(pod_uid):
                state.default_cpuset = state.default_cpuset | state.pod_entries.pop(pod_uid)
            return
        state.default_cpuset = state.default_cpuset | (released - siblings)

    # hints --------------------------------------------------------------------------------------
    def generate_hints(self, available: CPUSet, reusable: CPUSet, request: int) -> CPUHints:
        """generateCPUTopologyHints, explicit or compact per ``compact_hints``."""
        return cpu_topology_hints(self.topology, available, reusable, request,
                                  align_by_socket=self.options.align_by_socket, compact=self.compact_hints)

    def hints(self, state: CPUState, pod: Pod, container: Container) -> Hints | None:
        """GetTopologyHints (container scope, spec §8.2); None = no preference."""
        request = self.guaranteed_cpus(pod, container)
        if request == 0:
            return None
        if pod.has_pod_level_resources() and not self.gates.pod_level_managers:
            return None
        allocated = state.get_cpuset(pod.uid, container.name)
        if allocated is not None:
            if len(allocated) != request:
                return {CPU: []}
            return {CPU: self.generate_hints(allocated, CPUSet(), request)}
        reusable = self.cpus_to_reuse.get(pod.uid, CPUSet())
        return {CPU: self.generate_hints(self.available_cpus(state), reusable, request)}

    def pod_hints(self, state: CPUState, pod: Pod) -> Hints | None:
        """GetPodTopologyHints (pod scope, spec §8.3, §9.4, §9.7)."""
        if pod.has_pod_level_resources() and not self.gates.pod_level_managers:
            return None
        if self.is_pod_level(pod):
            return pod_level.pod_hints(self, state, pod)
        request = self.pod_guaranteed_cpus(pod)
        if request == 0:
            return None
        assigned = CPUSet()
        for container in pod.all_containers():
            allocated = state.get_cpuset(pod.uid, container.name)
            if allocated is None:
                continue
            if len(allocated) != self.guaranteed_cpus(pod, container):
                return {CPU: []}
            assigned = assigned | allocated
        if len(assigned) == request:
            return {CPU: self.generate_hints(assigned, CPUSet(), request)}
        reusable = self.cpus_to_reuse.get(pod.uid, CPUSet()) | assigned
        return {CPU: self.generate_hints(self.available_cpus(state), reusable, request)}

    # isolation ----------------------------------------------------------------------------------
    def isolation_level(self, state: CPUState, pod: Pod, container: Container) -> IsolationLevel:
        return isolation_level(state, pod, container,
                               pod_level_managers=self.gates.enabled(POD_LEVEL_RESOURCE_MANAGERS))

    def cpu_quota(self, state: CPUState, pod: Pod, container: Container) -> CPUQuota:
        """The container's CFS quota decision (``unlimited`` = cpu.cfs_quota_us -1)."""
        return container_cpu_quota(
            self.isolation_level(state, pod, container),
            disable_quota_with_exclusive_cpus=self.gates.enabled(DISABLE_CPU_QUOTA_WITH_EXCLUSIVE_CPUS),
        )

    def pod_cpu_quota(self, state: CPUState, pod: Pod) -> CPUQuota:
        """The pod cgroup's and sandbox's CFS quota decision."""
        return pod_cpu_quota(
            state, pod,
            pod_level_managers=self.gates.enabled(POD_LEVEL_RESOURCE_MANAGERS),
            disable_quota_with_exclusive_cpus=self.gates.enabled(DISABLE_CPU_QUOTA_WITH_EXCLUSIVE_CPUS),
        )
