"""Prometheus metrics under the kubelet's names, ``kubelet_`` becoming ``podshim_`` (DESIGN.md §4).

:class:`Metrics` owns its own registry (tests and several daemons in one process never share
counters). It learns from two sources:

- :meth:`Metrics.observe_admission` takes each admission's outcome (``Admitted``/``Rejected``)
  and its duration: the topology manager's admission counters and histogram, and per container
  the KEP-5526 ``container_assignments`` (exclusive CPUs from the pod's budget or the node, or
  the pod's shared pool);
- :meth:`Metrics.record` is a runtime tap and looks at the providers' answers: a CPU manager
  pinning request per container given exclusive CPUs (and per failed allocation, which is also
  a pinning error), a memory manager pinning request per container given NUMA nodes, and the
  KEP-5526 allocation counters with ``source`` = ``pod`` for what comes from a pod's bubble.

``podshim_resource_manager_container_assignments`` keeps the kubelet's exact name: the Python
client would append ``_total`` to a Counter, so it is exposed as a gauge that only grows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from shim.messages import Admitted, Allocated, AllocateRequest, AllocationFailed, Message, Rejected
from shim.runtime.bus import Delivery

# The kubelet's buckets for topology_manager_admission_duration_ms: 0.05 ms doubling 20 times.
ADMISSION_BUCKETS = tuple(0.05 * 2**i for i in range(20))

DEFAULT_PROVIDERS: Mapping[str, str] = {"cpu": "cpu", "memory": "memory"}
"""Provider actor name → resource name."""


class Metrics:
    """The podshim metrics in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 providers: Mapping[str, str] = DEFAULT_PROVIDERS) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.providers = dict(providers)
        r = self.registry
        self.cpu_pinning_requests = Counter(
            "podshim_cpu_manager_pinning_requests_total", "CPU manager requests for exclusive CPUs.", registry=r)
        self.cpu_pinning_errors = Counter(
            "podshim_cpu_manager_pinning_errors_total", "CPU manager pinning requests that failed.", registry=r)
        self.memory_pinning_requests = Counter(
            "podshim_memory_manager_pinning_requests_total", "Memory manager requests for NUMA pinning.",
            registry=r)
        self.memory_pinning_errors = Counter(
            "podshim_memory_manager_pinning_errors_total", "Memory manager pinning requests that failed.",
            registry=r)
        self.admission_requests = Counter(
            "podshim_topology_manager_admission_requests_total", "Topology manager admission requests.",
            registry=r)
        self.admission_errors = Counter(
            "podshim_topology_manager_admission_errors_total", "Topology manager admissions that failed.",
            registry=r)
        self.admission_duration = Histogram(
            "podshim_topology_manager_admission_duration_ms", "Duration of a topology manager admission (ms).",
            buckets=ADMISSION_BUCKETS, registry=r)
        self.allocations = Counter(
            "podshim_resource_manager_allocations_total", "Resource allocations, by resource and source.",
            ["resource_name", "source"], registry=r)
        self.allocation_errors = Counter(
            "podshim_resource_manager_allocation_errors_total", "Failed resource allocations.",
            ["resource_name", "source"], registry=r)
        self.container_assignments = Gauge(
            "podshim_resource_manager_container_assignments", "Containers assigned resources, by assignment type.",
            ["resource_name", "assignment_type"], registry=r)
        self.reconcile_passes = Counter(
            "podshim_reconcile_passes_total", "Reconcile passes, full (cgroups read) or quick.", ["kind"], registry=r)
        self.reconcile_reapplied = Counter(
            "podshim_reconcile_reapplied_total", "Containers pinned again by the reconcile loop.", registry=r)
        self.reconcile_released = Counter(
            "podshim_reconcile_released_total",
            "Containers released because their cgroup was gone, and stale pods released (not active anywhere).",
            registry=r)
        self.reconcile_failures = Counter(
            "podshim_reconcile_failures_total", "Re-pins that failed (retried on the next pass).", registry=r)
        self.hook_events = Counter(
            "podshim_hook_events_total", "OCI hook events served, by stage and action.", ["stage", "action"],
            registry=r)
        # pod uid → where its last AllocateRequest draws from (prometheus-client values are
        # thread-safe; this dict is only touched by the runtime's thread).
        self._sources: dict[str, str] = {}

    # --- admission outcomes ---------------------------------------------------------------
    def observe_admission(self, outcome: Admitted | Rejected, duration_ms: float) -> None:
        """Count one admission decision that took ``duration_ms``."""
        self.admission_requests.inc()
        self.admission_duration.observe(duration_ms)
        if isinstance(outcome, Rejected):
            self.admission_errors.inc()
            return
        from_pod = outcome.pod is not None
        for container in outcome.containers:
            if container.isolation == "container":
                kind = "pod_exclusive" if from_pod else "node_exclusive"
            elif container.isolation == "pod":
                kind = "pod_shared"
            else:
                continue  # the node's shared pool is no assignment
            self.container_assignments.labels("cpu", kind).inc()

    # --- the daemon's own work --------------------------------------------------------------
    def observe_reconcile(self, *, full: bool, reapplied: int, released: int, failed: int) -> None:
        """Count one reconcile pass and what it did."""
        self.reconcile_passes.labels("full" if full else "quick").inc()
        self.reconcile_reapplied.inc(reapplied)
        self.reconcile_released.inc(released)
        self.reconcile_failures.inc(failed)

    def observe_hook(self, stage: str, action: str) -> None:
        """Count one hook event and its outcome (pinned, rejected, skipped, released, failed)."""
        self.hook_events.labels(stage, action).inc()

    # --- providers (a runtime tap) --------------------------------------------------------
    def record(self, delivery: Delivery) -> None:
        """Tap: learn from the providers' requests and answers."""
        message = delivery.msg
        if isinstance(message, AllocateRequest):
            pod_scope = message.container is None and message.pod.has_pod_level_resources()
            self._sources[message.pod_uid] = "pod" if pod_scope else "node"
        elif isinstance(message, Allocated):
            self._allocated(message)
        elif isinstance(message, AllocationFailed):
            self._failed(message)
        elif isinstance(message, Admitted | Rejected):
            self._sources.pop(message.pod_uid, None)

    def _allocated(self, message: Allocated) -> None:
        resource = self.providers.get(message.provider)
        if resource is None:
            return
        if message.pod is not None:
            # The bubble comes from the node; the containers' slices come from the bubble.
            self.allocations.labels(resource, "node").inc()
            if message.placements:
                self.allocations.labels(resource, "pod").inc(len(message.placements))
        else:
            self.allocations.labels(resource, "node").inc(max(1, len(message.placements)))
        if resource == "cpu":
            self.cpu_pinning_requests.inc(sum(p.isolation == "container" for p in message.placements))
        elif resource == "memory":
            self.memory_pinning_requests.inc(sum(bool(p.mems) for p in message.placements))

    def _failed(self, message: AllocationFailed) -> None:
        resource = self.providers.get(message.provider)
        if resource is None:
            return
        self.allocation_errors.labels(resource, self._sources.get(message.pod_uid, "node")).inc()
        if resource == "cpu":
            self.cpu_pinning_requests.inc()
            self.cpu_pinning_errors.inc()
        elif resource == "memory":
            self.memory_pinning_requests.inc()
            self.memory_pinning_errors.inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """One sample's value (0 when absent): tests and ``podshim state`` read it."""
        found = self.registry.get_sample_value(name, dict(labels or {}))
        return 0.0 if found is None else found


def update_from_outcome(metrics: Metrics, outcome: Message, duration_ms: float) -> None:
    """Count ``outcome`` when it is an admission decision (other messages are ignored)."""
    if isinstance(outcome, Admitted | Rejected):
        metrics.observe_admission(outcome, duration_ms)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6; ``:9100`` means loopback) → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--metrics {text!r}: expected HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


@dataclass
class MetricsServer:
    """The HTTP endpoint (``/metrics``) served from a daemon thread of prometheus-client."""

    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Start serving ``metrics`` over HTTP on ``host:port`` (port 0: any free port)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
