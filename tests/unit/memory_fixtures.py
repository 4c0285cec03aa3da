"""Helpers for the Memory manager unit tests: small machines and Guaranteed pods."""

from __future__ import annotations

from typing import Any

from shim.memory import MemoryState, NodeMemory, StaticPolicy
from shim.pod import Pod

MIB = 1 << 20
GIB = 1 << 30
GATES_ON = {"PodLevelResources": True, "PodLevelResourceManagers": True}


def machine(count: int, memory: int = 8 * GIB, huge_1g: int = 2, huge_2m: int = 256) -> list[NodeMemory]:
    hugepages = {"hugepages-1Gi": huge_1g * GIB, "hugepages-2Mi": huge_2m * 2 * MIB}
    return [NodeMemory(node, memory, {k: v for k, v in hugepages.items() if v}) for node in range(count)]


def policy(count: int = 2, *, gates: dict[str, bool] | None = None, **kwargs: Any) -> StaticPolicy:
    return StaticPolicy(
        machine(count, **kwargs),
        reserved_memory={node: {"memory": 512 * MIB} for node in range(count)},
        feature_gates=GATES_ON if gates is None else gates,
    )


def started(p: StaticPolicy) -> MemoryState:
    state = MemoryState()
    p.start(state)
    return state


def resources(memory: int | None = None, cpu: str = "1", shared: bool = False, **extra: int) -> dict[str, Any]:
    """Guaranteed resources (requests == limits), or only requests when ``shared``."""
    amounts: dict[str, Any] = {"cpu": cpu}
    if memory is not None:
        amounts["memory"] = str(memory)
    amounts.update({name.replace("_", "-"): str(v) for name, v in extra.items()})
    return {"requests": amounts} if shared else {"requests": amounts, "limits": dict(amounts)}


def pod(
    uid: str,
    containers: list[tuple[str, dict[str, Any]]],
    *,
    init: list[tuple[str, dict[str, Any], bool]] = (),  # type: ignore[assignment]
    budget: dict[str, Any] | None = None,
) -> Pod:
    spec: dict[str, Any] = {
        "containers": [{"name": name, "resources": res} for name, res in containers],
        "initContainers": [
            {"name": name, "resources": res, **({"restartPolicy": "Always"} if sidecar else {})}
            for name, res, sidecar in init
        ],
    }
    if budget is not None:
        spec["resources"] = budget
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": spec}, apply_defaults=False)
