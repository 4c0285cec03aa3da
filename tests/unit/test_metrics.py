"""Metrics: DESIGN.md §4 names, updates from outcomes and provider answers, the HTTP endpoint."""

from __future__ import annotations

import urllib.request

import pytest
import trio
from toy_actors import toy_actors, toy_pod

from shim.frontends.metrics import Metrics, parse_listen, serve_metrics, update_from_outcome
from shim.messages import (
    AdmitPod,
    Admitted,
    Allocated,
    AllocateRequest,
    AllocationFailed,
    ContainerAssignment,
    ContainerPlacement,
    PodAssignment,
    Rejected,
    RemovePod,
)
from shim.runtime.bus import Delivery
from shim.runtime.trio_runtime import TrioRuntime

NAMES = [
    "podshim_cpu_manager_pinning_requests_total",
    "podshim_cpu_manager_pinning_errors_total",
    "podshim_memory_manager_pinning_requests_total",
    "podshim_memory_manager_pinning_errors_total",
    "podshim_topology_manager_admission_requests_total",
    "podshim_topology_manager_admission_errors_total",
    "podshim_topology_manager_admission_duration_ms",
    "podshim_resource_manager_allocations_total",
    "podshim_resource_manager_allocation_errors_total",
    "podshim_resource_manager_container_assignments",
]


def assignment(name: str, isolation: str) -> ContainerAssignment:
    return ContainerAssignment(name=name, kind="app", cpus="1", mems="0", isolation=isolation,  # type: ignore[arg-type]
                               cpu_quota="unlimited")


def deliver(metrics: Metrics, *messages: object) -> None:
    for seq, message in enumerate(messages, start=1):
        metrics.record(Delivery(seq=seq, sender="x", to="arbiter", msg=message))  # type: ignore[arg-type]


def test_every_design_name_is_exposed_with_its_type() -> None:
    text = Metrics().exposition().decode()
    for name in NAMES:
        assert f"# HELP {name} " in text, name
    assert "# TYPE podshim_topology_manager_admission_duration_ms histogram" in text
    assert "# TYPE podshim_cpu_manager_pinning_requests_total counter" in text
    assert "# TYPE podshim_resource_manager_container_assignments gauge" in text


def test_admission_outcomes() -> None:
    metrics = Metrics()
    update_from_outcome(metrics, Admitted(pod_uid="a", name="a", containers=(
        assignment("x", "container"), assignment("y", "host"))), 0.3)
    update_from_outcome(metrics, Admitted(pod_uid="b", name="b", pod=PodAssignment(cpus="2-5"), containers=(
        assignment("x", "container"), assignment("y", "pod"), assignment("z", "pod"))), 1.5)
    update_from_outcome(metrics, Rejected(pod_uid="c", name="c", reason="TopologyAffinityError", message="m"), 40)
    update_from_outcome(metrics, RemovePod(pod_uid="a"), 1)  # not a decision: ignored
    v = metrics.value
    assert v("podshim_topology_manager_admission_requests_total") == 3
    assert v("podshim_topology_manager_admission_errors_total") == 1
    assert v("podshim_topology_manager_admission_duration_ms_count") == 3
    assert v("podshim_topology_manager_admission_duration_ms_sum") == pytest.approx(41.8)
    assert v("podshim_topology_manager_admission_duration_ms_bucket", {"le": "0.4"}) == 1
    assert v("podshim_topology_manager_admission_duration_ms_bucket", {"le": "3.2"}) == 2
    cpu = {"resource_name": "cpu"}
    assert v("podshim_resource_manager_container_assignments", {**cpu, "assignment_type": "node_exclusive"}) == 1
    assert v("podshim_resource_manager_container_assignments", {**cpu, "assignment_type": "pod_exclusive"}) == 1
    assert v("podshim_resource_manager_container_assignments", {**cpu, "assignment_type": "pod_shared"}) == 2


def test_provider_answers() -> None:
    metrics = Metrics()
    pod_level = toy_pod("p", 2, containers=2, pod_level=True)
    plain = toy_pod("n", 1)
    deliver(
        metrics,
        AllocateRequest(pod=pod_level),
        Allocated(provider="cpu", pod_uid="p", pod=PodAssignment(cpus="1-4"), placements=(
            ContainerPlacement(container="c0", cpus="1-2", isolation="container"),
            ContainerPlacement(container="c1", cpus="3-4", isolation="pod"))),
        Allocated(provider="memory", pod_uid="p", placements=(
            ContainerPlacement(container="c0", mems=(0,)), ContainerPlacement(container="c1", mems=(0,)))),
        AllocateRequest(pod=plain),
        AllocationFailed(provider="cpu", pod_uid="n", reason="UnexpectedAdmissionError", message="m"),
        AllocateRequest(pod=pod_level),
        AllocationFailed(provider="memory", pod_uid="p", reason="UnexpectedAdmissionError", message="m"),
        Allocated(provider="devices", pod_uid="p"),  # not a provider metrics know: ignored
    )
    v = metrics.value
    assert v("podshim_cpu_manager_pinning_requests_total") == 2  # c0 exclusive + the failed one
    assert v("podshim_cpu_manager_pinning_errors_total") == 1
    assert v("podshim_memory_manager_pinning_requests_total") == 3
    assert v("podshim_memory_manager_pinning_errors_total") == 1
    alloc = "podshim_resource_manager_allocations_total"
    assert v(alloc, {"resource_name": "cpu", "source": "node"}) == 1  # the bubble
    assert v(alloc, {"resource_name": "cpu", "source": "pod"}) == 2
    assert v(alloc, {"resource_name": "memory", "source": "node"}) == 2
    errors = "podshim_resource_manager_allocation_errors_total"
    assert v(errors, {"resource_name": "cpu", "source": "node"}) == 1
    assert v(errors, {"resource_name": "memory", "source": "pod"}) == 1


async def test_metrics_as_a_runtime_tap() -> None:
    metrics = Metrics()
    runtime = TrioRuntime(toy_actors(cpus=4), taps=[metrics])
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        for pod in (toy_pod("a", 2), toy_pod("b", 2)):
            update_from_outcome(metrics, await runtime.request(  # type: ignore[arg-type]
                AdmitPod(pod=pod), (Admitted, Rejected)), 0.1)
        runtime.close()
    assert metrics.value("podshim_topology_manager_admission_requests_total") == 2
    assert metrics.value("podshim_topology_manager_admission_errors_total") == 1
    assert metrics.value("podshim_cpu_manager_pinning_errors_total") == 1
    assert metrics.value("podshim_cpu_manager_pinning_requests_total") == 2


def test_http_endpoint_on_loopback() -> None:
    metrics = Metrics()
    metrics.observe_admission(Rejected(pod_uid="c", name="c", reason="r", message="m"), 2)
    server = serve_metrics(metrics, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        server.close()
    assert "podshim_topology_manager_admission_errors_total 1.0" in body


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9100", ("127.0.0.1", 9100)),
    (":9100", ("127.0.0.1", 9100)),
    ("[::1]:0", ("::1", 0)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9100", "host:", "host:port", "h:70000"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)
