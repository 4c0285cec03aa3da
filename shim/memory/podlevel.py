"""KEP-5526 pod-level resources for the Static policy (spec §7): the empty-shared-pool
validation and the partition of the pod budget into exclusive slices and the pod shared pool.

Amounts subtract like the kubelet's uint64 arithmetic, so a pod whose exclusive requests
exceed its budget (which API validation normally prevents) behaves as in the kubelet.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shim.memory.errors import EmptyPodSharedPoolError
from shim.memory.requests import Gates, Requests, container_requests
from shim.memory.state import Block
from shim.pod import Pod

_U64 = 1 << 64


def _sub(left: int, right: int) -> int:
    return (left - right) % _U64


def validate_pod_scope(pod: Pod, total: Requests, gates: Gates) -> None:
    """validatePodScopeResources: refuse a pod whose exclusive containers leave nothing for the
    containers that need the pod's shared pool."""
    long_running: Requests = {}
    shared_long_running = False
    for container in pod.init_containers:
        requests = container_requests(pod, container, gates)
        if not container.is_sidecar:
            if requests:
                for name, budget in total.items():
                    pool = _sub(budget, long_running.get(name, 0))
                    wanted = requests.get(name, 0)
                    if wanted > pool:
                        raise EmptyPodSharedPoolError(
                            f"pod rejected, largest exclusive init container requests {wanted} of {name}, "
                            f"but only {pool} available"
                        )
            else:
                for name, budget in total.items():
                    if long_running.get(name, 0) >= budget:
                        raise EmptyPodSharedPoolError(
                            f"pod rejected, pod has shared init containers but no {name} available for them"
                        )
            continue
        if not requests:
            shared_long_running = True
        for name, amount in requests.items():
            long_running[name] = long_running.get(name, 0) + amount
    for container in pod.containers:
        requests = container_requests(pod, container, gates)
        if not requests:
            shared_long_running = True
        for name, amount in requests.items():
            long_running[name] = long_running.get(name, 0) + amount
    if shared_long_running:
        for name, budget in total.items():
            if long_running.get(name, 0) >= budget:
                raise EmptyPodSharedPoolError(
                    f"pod rejected, sum of exclusive container {name} requests equals pod budget, "
                    "leaving no memory for shared containers"
                )


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class Partition(msgspec.Struct):
    """Exclusive blocks by container name, and the pod shared pool every other container gets."""

    exclusive: dict[str, list[Block]]
    shared: list[Block]

    def blocks_for(self, name: str) -> list[Block]:
        chosen = self.exclusive.get(name, self.shared)
        return [block.copy() for block in chosen]


def partition(pod: Pod, total: Requests, bits: Sequence[int], gates: Gates) -> Partition:
    """Split the pod budget placed on ``bits``: Guaranteed containers get exclusive slices,
    sidecar slices shrink the pool for later containers, regular init containers may use the
    whole budget minus the sidecars started before them."""

    def blocks(amounts: Requests) -> list[Block]:
        return [Block(list(bits), name, size) for name, size in amounts.items() if size > 0]

    exclusive: dict[str, list[Block]] = {}
    sidecars: Requests = {}
    for container in pod.init_containers:
        requests = container_requests(pod, container, gates)
        if not requests:
            if not container.is_sidecar:
                exclusive[container.name] = blocks(
                    {name: _sub(size, sidecars.get(name, 0)) for name, size in total.items()}
                )
            continue
        exclusive[container.name] = blocks(requests)
        if container.is_sidecar:
            for name, size in requests.items():
                sidecars[name] = sidecars.get(name, 0) + size
    pool = {name: _sub(size, sidecars.get(name, 0)) for name, size in total.items()}
    for container in pod.containers:
        requests = container_requests(pod, container, gates)
        if not requests:
            continue
        exclusive[container.name] = blocks(requests)
        for name, size in requests.items():
            if size > 0:
                pool[name] = _sub(pool.get(name, 0), size)
    return Partition(exclusive, blocks(pool))
