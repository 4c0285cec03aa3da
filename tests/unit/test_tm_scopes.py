"""Unit tests: scopes (order, store, errors, pod-level path), manager construction and options."""

from __future__ import annotations

from typing import Any

import pytest

from shim.pod import Container, Pod
from shim.topology_manager import (
    AdmissionError,
    Bitmask,
    HintStore,
    ProviderHints,
    TopologyHint,
    TopologyManagerError,
    container_scope_plan,
    new_manager,
    parse_policy_options,
)

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True}


def make_pod(pod_level: bool = False) -> Pod:
    spec: dict[str, Any] = {
        "initContainers": [{"name": "init"}, {"name": "side", "restartPolicy": "Always"}],
        "containers": [{"name": "app"}],
    }
    if pod_level:
        spec["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}
    return Pod.from_dict({"metadata": {"uid": "uid-1", "name": "p"}, "spec": spec}, apply_defaults=False)


class Provider:
    """Answers per-container hints from a table and can fail allocation of one container."""

    def __init__(self, table: dict[str, ProviderHints], fail: dict[str, Exception] | None = None) -> None:
        self.table = table
        self.fail = fail or {}
        self.log: list[str] = []

    def hints(self, pod: Pod, container: Container) -> ProviderHints:
        self.log.append(f"hints:{container.name}")
        return self.table.get(container.name)

    def pod_hints(self, pod: Pod) -> ProviderHints:
        self.log.append("pod_hints")
        return self.table.get("pod")

    def allocate(self, pod: Pod, container: Container) -> None:
        self.log.append(f"allocate:{container.name}")
        if container.name in self.fail:
            raise self.fail[container.name]

    def allocate_pod(self, pod: Pod) -> None:
        self.log.append("allocate_pod")
        if "pod" in self.fail:
            raise self.fail["pod"]


def hint(*ids: int, preferred: bool = True) -> TopologyHint:
    return TopologyHint(Bitmask.of(*ids), preferred)


def test_container_scope_interleaves_hints_and_allocation_in_order() -> None:
    provider = Provider({"init": {"cpu": [hint(1)]}, "app": {"cpu": [hint(0)]}})
    manager = new_manager([0, 1], "restricted", "container", providers=[provider])
    result = manager.admit(make_pod())
    assert result.admit
    assert provider.log == ["hints:init", "allocate:init", "hints:side", "allocate:side", "hints:app", "allocate:app"]
    assert manager.get_affinity("uid-1", "init") == hint(1)
    assert manager.get_affinity("uid-1", "side") == TopologyHint(Bitmask.of(0, 1), True)
    assert manager.get_affinity("uid-1", "app") == hint(0)
    assert [c.name for c in container_scope_plan(make_pod())] == ["init", "side", "app"]


def test_container_scope_stops_at_the_first_rejected_container() -> None:
    provider = Provider({"side": {"cpu": [hint(0, 1, preferred=False)]}})
    manager = new_manager([0, 1], "restricted", "container", providers=[provider])
    result = manager.admit(make_pod())
    assert (result.admit, result.reason) == (False, "TopologyAffinityError")
    assert result.message == "Resources cannot be allocated with Topology locality"
    assert provider.log == ["hints:init", "allocate:init", "hints:side"]


class Typed(AdmissionError):
    admission_reason = "SMTAlignmentError"


def test_allocation_errors_keep_their_reason_or_become_unexpected() -> None:
    typed = new_manager([0], "best-effort", "container", providers=[Provider({}, {"app": Typed("odd cpus")})])
    result = typed.admit(make_pod())
    assert (result.admit, result.reason, result.message) == (False, "SMTAlignmentError", "odd cpus")
    plain = new_manager([0], "best-effort", "container", providers=[Provider({}, {"init": RuntimeError("boom")})])
    result = plain.admit(make_pod())
    assert result.reason == "UnexpectedAdmissionError"
    assert result.message == "Allocate failed due to boom, which is unexpected"


def test_pod_scope_pod_level_path_allocates_once() -> None:
    provider = Provider({"pod": {"cpu": [hint(1)]}})
    manager = new_manager([0, 1], "restricted", "pod", feature_gates=GATES, providers=[provider])
    assert manager.admit(make_pod(pod_level=True)).admit
    assert provider.log == ["pod_hints", "allocate_pod"]
    assert all(manager.get_affinity("uid-1", name) == hint(1) for name in ("init", "side", "app"))


def test_pod_scope_pod_level_rejection_message() -> None:
    provider = Provider({"pod": {"cpu": []}})
    manager = new_manager([0, 1], "restricted", "pod", feature_gates=GATES, providers=[provider])
    result = manager.admit(make_pod(pod_level=True))
    assert result.reason == "TopologyAffinityError"
    assert result.message == "Pod Scope pod with pod-level resources failed admission under pod-scope topology manager"


def test_pod_scope_without_the_gate_allocates_per_container() -> None:
    provider = Provider({"pod": {"cpu": [hint(1)]}})
    manager = new_manager([0, 1], "restricted", "pod", providers=[provider])
    assert manager.admit(make_pod(pod_level=True)).admit
    assert provider.log == ["pod_hints", "allocate:init", "allocate:side", "allocate:app"]


def test_none_policy_allocates_without_hints() -> None:
    provider = Provider({"app": {"cpu": []}})
    manager = new_manager([0, 1], "none", "pod", providers=[provider])
    assert manager.admit(make_pod()).admit
    assert provider.log == ["allocate:init", "allocate:side", "allocate:app"]
    assert manager.get_affinity("uid-1", "app") == TopologyHint(None, False)


def test_store_keeps_a_hint_while_another_container_id_maps_to_it() -> None:
    store = HintStore()
    store.set_hint("u", "c", hint(0))
    store.add_container("u", "c", "id-1")
    store.add_container("u", "c", "id-2")
    store.remove_container("id-1")
    assert store.get_affinity("u", "c") == hint(0)
    store.remove_container("id-2")
    store.remove_container("unknown")
    assert store.get_affinity("u", "c") == TopologyHint(None, False)
    assert store.hints == {}


def test_node_count_limit_only_without_the_option() -> None:
    with pytest.raises(TopologyManagerError, match="unsupported on machines with more than 8 NUMA Nodes"):
        new_manager(range(9), "best-effort", "pod")
    manager = new_manager(range(34), "best-effort", "pod", {"max-allowable-numa-nodes": "8"})
    assert manager.policy_name == "best-effort"


@pytest.mark.parametrize(
    ("options", "gates", "message"),
    [
        ({"max-allowable-numa-nodes": "7"}, {}, 'the minimum value of "max-allowable-numa-nodes" should not be less'),
        (
            {"max-allowable-numa-nodes": "x"},
            {},
            'unable to convert policy option to integer "max-allowable-numa-nodes"',
        ),
        ({"prefer-closest-numa-nodes": "yes"}, {}, 'bad value for option "prefer-closest-numa-nodes"'),
        ({"nope": "1"}, {}, 'unknown Topology Manager Policy option: "nope"'),
    ],
)
def test_option_errors(options: dict[str, str], gates: dict[str, bool], message: str) -> None:
    with pytest.raises(TopologyManagerError, match=message):
        parse_policy_options(options, gates)


def test_manager_errors() -> None:
    with pytest.raises(TopologyManagerError, match='unknown scope: "node"'):
        new_manager([0], "best-effort", "node")
    with pytest.raises(TopologyManagerError, match="error getting NUMA distances"):
        new_manager([0, 1], "best-effort", "pod", {"prefer-closest-numa-nodes": "true"})
