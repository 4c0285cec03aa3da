"""KEP-5526 pod-level CPU allocation: the bubble, its partition, validation, restore, hints.

Spec: cpu-manager.md §9.2–§9.4 and the post-1.36 restore-on-readmission rules of §9.7 (DESIGN.md
§5). A new allocation is computed aside and committed in one step, so a rejected pod leaves the
state as it was; the only deliberate exception is the cleanup of a stale or inconsistent
checkpointed pod entry, which is kept even when the new allocation then fails (as upstream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shim.cpu.errors import AllocationError, CPUManagerError, EmptyPodSharedPoolError
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet
from shim.pod import CPU, Pod
from shim.topology_manager.hint import TopologyHint

if TYPE_CHECKING:
    from shim.cpu.static import Hints, StaticPolicy


def validate_pod_scope_resources(policy: StaticPolicy, pod: Pod) -> None:
    """validatePodScopeResources (spec §9.3); raises EmptyPodSharedPoolError."""
    total = policy.pod_guaranteed_cpus(pod)
    long_running = 0
    needs_shared = False
    for container in pod.init_containers:
        cpus = policy.guaranteed_cpus(pod, container)
        if container.is_sidecar:
            if cpus == 0:
                needs_shared = True
            else:
                long_running += cpus
        elif cpus > 0:
            if cpus > total - long_running:
                raise EmptyPodSharedPoolError(
                    f"pod rejected, largest exclusive init container requests {cpus} cpus, "
                    f"but only {total - long_running} available"
                )
        elif long_running >= total:
            raise EmptyPodSharedPoolError("pod rejected, pod has shared init containers but no cpus available for them")
    for container in pod.containers:
        cpus = policy.guaranteed_cpus(pod, container)
        if cpus == 0:
            needs_shared = True
        else:
            long_running += cpus
    if needs_shared and long_running >= total:
        raise EmptyPodSharedPoolError(
            "pod rejected, sum of exclusive container cpu requests equals pod budget, "
            "leaving no cpus for shared containers"
        )


def partition(policy: StaticPolicy, pod: Pod, bubble: CPUSet, existing: dict[str, CPUSet]) -> dict[str, CPUSet]:
    """Every container's CPUs inside ``bubble`` (spec §9.2 steps 6–8), keeping ``existing``
    assignments as they are (restore, §9.7). Raises AllocationError when a slice does not fit."""
    result: dict[str, CPUSet] = {}
    sidecars = CPUSet()
    for container in pod.init_containers:
        cpus = policy.guaranteed_cpus(pod, container)
        kept = existing.get(container.name)
        if kept is not None:
            result[container.name] = kept
            if container.is_sidecar and cpus > 0:
                sidecars = sidecars | kept
        elif cpus > 0:
            # Regular init containers run one after another: their slices may overlap later ones.
            piece = policy.take(bubble - sidecars, cpus)
            result[container.name] = piece
            if container.is_sidecar:
                sidecars = sidecars | piece
        elif not container.is_sidecar:
            result[container.name] = bubble - sidecars
    shared_pool = bubble - sidecars
    for container in pod.containers:
        cpus = policy.guaranteed_cpus(pod, container)
        kept = existing.get(container.name)
        if kept is not None:
            result[container.name] = kept
            if cpus > 0:
                shared_pool = shared_pool - kept
        elif cpus > 0:
            piece = policy.take(shared_pool, cpus)
            result[container.name] = piece
            shared_pool = shared_pool - piece
    return {c.name: result.get(c.name, shared_pool) for c in pod.all_containers()}


def _is_spec_prefix(pod: Pod, assigned: dict[str, CPUSet]) -> bool:
    """Assignments are written in spec order, so anything else is a leftover of a cleanup."""
    order = [container.name for container in pod.all_containers()]
    return set(order[: len(assigned)]) == set(assigned)


def _release(state: CPUState, pod_uid: str) -> None:
    entry = state.pod_entries.pop(pod_uid, CPUSet())
    state.default_cpuset = state.default_cpuset | entry
    state.assignments.pop(pod_uid, None)


def _record(policy: StaticPolicy, pod: Pod, assignments: dict[str, CPUSet], new: set[str]) -> None:
    metrics = policy.metrics
    for container in pod.all_containers():
        if container.name not in new:
            continue
        metrics.count(metrics.allocations, "pod")
        kind = "pod_exclusive" if policy.guaranteed_cpus(pod, container) > 0 else "pod_shared"
        metrics.count(metrics.container_assignments, kind)


def allocate_pod(policy: StaticPolicy, state: CPUState, pod: Pod, hint: TopologyHint | None) -> None:
    """AllocatePod for the Add operation (spec §9.2, §9.7)."""
    if not policy.is_pod_level(pod):
        _allocate_containers(policy, state, pod, hint)
        return
    total = policy.pod_guaranteed_cpus(pod)
    if total == 0:
        return
    try:
        validate_pod_scope_resources(policy, pod)
        entry = state.pod_entries.get(pod.uid)
        if entry is not None:
            if entry & state.default_cpuset:
                # Interrupted release: the CPUs are already free, only the entry is left.
                del state.pod_entries[pod.uid]
            elif _is_spec_prefix(pod, state.assignments.get(pod.uid, {})):
                _restore(policy, state, pod, entry)
                return
            else:
                _release(state, pod.uid)
        _allocate_fresh(policy, state, pod, total, hint)
    except CPUManagerError:
        policy.metrics.count(policy.metrics.allocation_errors, "pod")
        raise


def _restore(policy: StaticPolicy, state: CPUState, pod: Pod, entry: CPUSet) -> None:
    existing = dict(state.assignments.get(pod.uid, {}))
    try:
        assignments = partition(policy, pod, entry, existing)
    except AllocationError:
        _release(state, pod.uid)
        raise
    state.assignments[pod.uid] = assignments
    _record(policy, pod, assignments, set(assignments) - set(existing))


def _allocate_fresh(policy: StaticPolicy, state: CPUState, pod: Pod, total: int, hint: TopologyHint | None) -> None:
    policy.check_smt_alignment(state, total)
    affinity = hint.affinity if hint is not None else None
    bubble = policy.select_cpus(state, total, affinity, CPUSet())
    assignments = partition(policy, pod, bubble, {})
    state.default_cpuset = state.default_cpuset - bubble
    state.pod_entries[pod.uid] = bubble
    state.assignments[pod.uid] = assignments
    _record(policy, pod, assignments, set(assignments))


def _allocate_containers(policy: StaticPolicy, state: CPUState, pod: Pod, hint: TopologyHint | None) -> None:
    """A pod without pod-level resources in pod scope: Allocate per container, all or nothing."""
    snapshot = state.copy()
    reuse = dict(policy.cpus_to_reuse)
    try:
        for container in pod.all_containers():
            policy.allocate(state, pod, container, hint)
    except Exception:
        state.default_cpuset = snapshot.default_cpuset
        state.assignments.clear()
        state.assignments.update(snapshot.assignments)
        state.pod_entries.clear()
        state.pod_entries.update(snapshot.pod_entries)
        policy.cpus_to_reuse = reuse
        raise


def pod_hints(policy: StaticPolicy, state: CPUState, pod: Pod) -> Hints | None:
    """GetPodTopologyHints for a pod-level pod (master: a checkpointed pod entry regenerates
    its hints; a stale one is ignored; leftovers of a cleanup count as available)."""
    request = policy.pod_guaranteed_cpus(pod)
    if request == 0:
        return None
    try:
        validate_pod_scope_resources(policy, pod)
    except EmptyPodSharedPoolError:
        return {CPU: []}
    available = policy.available_cpus(state)
    entry = state.pod_entries.get(pod.uid)
    if entry is not None and not entry & state.default_cpuset:
        if _is_spec_prefix(pod, state.assignments.get(pod.uid, {})):
            if len(entry) != request:
                return {CPU: []}
            return {CPU: policy.generate_hints(entry, CPUSet(), request)}
        available = available | (entry - policy.reserved_cpus)
    return {CPU: policy.generate_hints(available, CPUSet(), request)}
