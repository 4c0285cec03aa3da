"""The subset of a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) that podshim uses.

Fields and error texts follow the kubelet (spec/runtime-integration.md §4.1). Defaults differ
from the kubelet's on purpose where podshim exists to do something (DESIGN.md §4): without a
file podshim runs the static CPU policy reserving CPU 0, the Static memory policy reserving what
the default eviction threshold needs, topology policy best-effort, pod scope, and both pod-level
gates on.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from shim.cpuset import CPUSet, CPUSetParseError
from shim.quantity import QuantityError, milli_value, value

API_VERSION = "kubelet.config.k8s.io/v1beta1"
CPU_POLICIES = ("none", "static")
MEMORY_POLICIES = ("None", "Static")
TOPOLOGY_POLICIES = ("none", "best-effort", "restricted", "single-numa-node")
TOPOLOGY_SCOPES = ("container", "pod")
CGROUP_DRIVERS = ("cgroupfs", "systemd")

# The kubelet's defaults for the gates podshim consults, except the two pod-level gates that
# podshim turns on by default (DESIGN.md §4).
DEFAULT_FEATURE_GATES: dict[str, bool] = {
    "PodLevelResources": True,
    "PodLevelResourceManagers": True,
    "CPUManagerPolicyAlphaOptions": False,
    "CPUManagerPolicyBetaOptions": True,
    "TopologyManagerPolicyAlphaOptions": False,
    "TopologyManagerPolicyBetaOptions": True,
    "DisableCPUQuotaWithExclusiveCPUs": True,
}
# The kubelet's default hard eviction threshold for memory (evictionHard["memory.available"]).
DEFAULT_EVICTION_MEMORY = "100Mi"
# Go duration syntax; compiled on first use (the hook's start-up should not pay for it).
_DURATION = r"(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))+"
_DURATION_PART = r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)"
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class ConfigError(ValueError):
    """An invalid configuration; ``str`` is one line naming the file, the field and the value."""


def _default_gates() -> dict[str, bool]:
    return dict(DEFAULT_FEATURE_GATES)


# A msgspec Struct rather than a dataclass: the OCI hook builds one on every container start,
# and the dataclasses module (with the inspect module it loads) costs more than the hook's work.
class Config(msgspec.Struct, frozen=True, kw_only=True):
    """A validated configuration. Quantities are integers (cpu in millicores, bytes otherwise).
    ``msgspec.structs.replace(config, field=value)`` makes a changed copy."""

    cpu_manager_policy: str = "static"
    cpu_manager_policy_options: dict[str, str] = msgspec.field(default_factory=dict)
    cpu_manager_reconcile_period: float = 10.0
    reserved_system_cpus: CPUSet | None = None
    kube_reserved: dict[str, int] = msgspec.field(default_factory=dict)
    system_reserved: dict[str, int] = msgspec.field(default_factory=dict)
    eviction_memory: int = 100 * 2**20
    memory_manager_policy: str = "Static"
    reserved_memory: dict[int, dict[str, int]] = msgspec.field(default_factory=dict)
    topology_manager_policy: str = "best-effort"
    topology_manager_scope: str = "pod"
    topology_manager_policy_options: dict[str, str] = msgspec.field(default_factory=dict)
    feature_gates: dict[str, bool] = msgspec.field(default_factory=_default_gates)
    cgroup_driver: str = "cgroupfs"
    cgroup_root: str = "/"
    source: str = "(defaults)"

    def gate(self, name: str) -> bool:
        return self.feature_gates.get(name, DEFAULT_FEATURE_GATES.get(name, False))

    @property
    def num_reserved_cpus(self) -> int:
        """Whole CPUs the static policy reserves: the reserved set's size, else
        ceil(kubeReserved.cpu + systemReserved.cpu)."""
        if self.reserved_system_cpus is not None:
            return len(self.reserved_system_cpus)
        millis = self.kube_reserved.get("cpu", 0) + self.system_reserved.get("cpu", 0)
        return math.ceil(millis / 1000)

    def node_allocatable_reservation(self) -> dict[str, int]:
        """kube-reserved + system-reserved (+ the eviction threshold for memory), per memory
        and hugepages type: what reservedMemory must add up to."""
        total: dict[str, int] = {}
        for reserved in (self.kube_reserved, self.system_reserved):
            for name, amount in reserved.items():
                if name == "memory" or name.startswith("hugepages-"):
                    total[name] = total.get(name, 0) + amount
        total["memory"] = total.get("memory", 0) + self.eviction_memory
        return total

    def pod_level_enabled(self) -> bool:
        """Both KEP-5526 gates on."""
        return self.gate("PodLevelResources") and self.gate("PodLevelResourceManagers")

    def to_kubelet_config(self) -> dict[str, Any]:
        """This configuration as a KubeletConfiguration mapping that reads back equal (traces
        carry it in their header)."""
        from shim.quantity import format_bytes

        def quantities(resources: dict[str, int]) -> dict[str, str]:
            return {name: format_quantity(name, amount) for name, amount in resources.items()}

        out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "KubeletConfiguration",
            "cpuManagerPolicy": self.cpu_manager_policy,
            "cpuManagerPolicyOptions": dict(self.cpu_manager_policy_options),
            "cpuManagerReconcilePeriod": f"{self.cpu_manager_reconcile_period}s",
            "kubeReserved": quantities(self.kube_reserved),
            "systemReserved": quantities(self.system_reserved),
            "evictionHard": {"memory.available": format_bytes(self.eviction_memory)},
            "memoryManagerPolicy": self.memory_manager_policy,
            "reservedMemory": [
                {"numaNode": node, "limits": quantities(limits)}
                for node, limits in sorted(self.reserved_memory.items())
            ],
            "topologyManagerPolicy": self.topology_manager_policy,
            "topologyManagerScope": self.topology_manager_scope,
            "topologyManagerPolicyOptions": dict(self.topology_manager_policy_options),
            "featureGates": dict(self.feature_gates),
            "cgroupDriver": self.cgroup_driver,
            "cgroupRoot": self.cgroup_root,
        }
        if self.reserved_system_cpus is not None:
            out["reservedSystemCPUs"] = str(self.reserved_system_cpus)
        return out


def default_config() -> Config:
    """podshim's embedded default: static CPU reserving CPU 0, Static memory reserving the
    default eviction threshold on NUMA node 0, best-effort, pod scope, pod-level gates on."""
    return Config(
        reserved_system_cpus=CPUSet.of([0]),
        reserved_memory={0: {"memory": value(DEFAULT_EVICTION_MEMORY)}},
    )


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a KubeletConfiguration file; None gives ``default_config()``. A file
    named ``*.json`` is read as JSON (no YAML parser is loaded: the hook starts faster)."""
    if path is None:
        return default_config()
    return config_from_mapping(read_config_document(path), source=str(path))


def read_config_document(path: str | os.PathLike[str]) -> object:
    """The parsed but not yet validated document of a config file (JSON for ``*.json``, else
    YAML); ConfigError names the file when it cannot be read or parsed."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as err:
        raise ConfigError(f"{source}: cannot read: {err.strerror}") from None
    if source.endswith(".json"):
        return _json_document(text, source)
    return _yaml_document(text, source)


def parse_json_config(text: str, *, source: str = "(config)") -> Config:
    """A KubeletConfiguration written as JSON (the kubelet accepts both forms)."""
    return config_from_mapping(_json_document(text, source), source=source)


def parse_config(text: str, *, source: str = "(config)") -> Config:
    """A KubeletConfiguration in YAML (JSON is YAML too)."""
    return config_from_mapping(_yaml_document(text, source), source=source)


def _json_document(text: str, source: str) -> object:
    import json

    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: invalid JSON at line {err.lineno}: {err.msg}") from None
    return {} if document is None else document


def _yaml_document(text: str, source: str) -> object:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {getattr(err, 'problem', err)}") from None
    return {} if document is None else document


def config_from_mapping(document: object, *, source: str = "(config)") -> Config:
    """Validate a KubeletConfiguration that is already a mapping (e.g. a trace header's)."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: a KubeletConfiguration must be a mapping")
    return _ConfigReader(source, document).read()


class _ConfigReader:
    """Reads one document field by field so errors can name the field."""

    def __init__(self, source: str, document: Mapping[str, Any]) -> None:
        self.source = source
        self.doc = document

    def fail(self, field_name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {field_name}: {message}")

    def read(self) -> Config:
        doc = self.doc
        kind = doc.get("kind", "KubeletConfiguration")
        if kind != "KubeletConfiguration":
            raise self.fail("kind", f'must be "KubeletConfiguration", got {kind!r}')
        api = doc.get("apiVersion", API_VERSION)
        if api != API_VERSION:
            raise self.fail("apiVersion", f'must be "{API_VERSION}", got {api!r}')
        cpu_policy = self.choice("cpuManagerPolicy", CPU_POLICIES, "none")
        memory_policy = self.choice("memoryManagerPolicy", MEMORY_POLICIES, "None")
        tm_policy = self.choice("topologyManagerPolicy", TOPOLOGY_POLICIES, "none")
        scope = self.string("topologyManagerScope", "container")
        if scope not in TOPOLOGY_SCOPES:
            raise self.fail("topologyManagerScope", f'unknown scope: "{scope}"')
        gates = dict(DEFAULT_FEATURE_GATES)
        for name, enabled in self.mapping("featureGates").items():
            if not isinstance(enabled, bool):
                raise self.fail(f"featureGates.{name}", f"must be true or false, got {enabled!r}")
            gates[str(name)] = enabled
        reserved_cpus = None
        if doc.get("reservedSystemCPUs") not in (None, ""):
            text = str(doc["reservedSystemCPUs"])
            try:
                reserved_cpus = CPUSet.parse(text.replace(" ", ""))
            except CPUSetParseError as err:
                raise self.fail("reservedSystemCPUs", f"{err} (got {text!r})") from None
        config = Config(
            cpu_manager_policy=cpu_policy,
            cpu_manager_policy_options=self.string_map("cpuManagerPolicyOptions"),
            cpu_manager_reconcile_period=self.duration("cpuManagerReconcilePeriod", 10.0),
            reserved_system_cpus=reserved_cpus,
            kube_reserved=self.resource_map("kubeReserved"),
            system_reserved=self.resource_map("systemReserved"),
            eviction_memory=self.eviction_memory(),
            memory_manager_policy=memory_policy,
            reserved_memory=self.reserved_memory(),
            topology_manager_policy=tm_policy,
            topology_manager_scope=scope,
            topology_manager_policy_options=self.string_map("topologyManagerPolicyOptions"),
            feature_gates=gates,
            cgroup_driver=self.choice("cgroupDriver", CGROUP_DRIVERS, "cgroupfs"),
            cgroup_root=self.string("cgroupRoot", "/") or "/",
            source=self.source,
        )
        if config.cpu_manager_policy == "static" and config.num_reserved_cpus == 0:
            raise self.fail(
                "cpuManagerPolicy",
                "[cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero",
            )
        self.check_policy_options(config)
        self.check_reserved_memory(config)
        return config

    def check_reserved_memory(self, config: Config) -> None:
        """reservedMemory must add up to what Node Allocatable reserves, per memory type (the
        kubelet's texts). Whether each NUMA node exists is checked when the node starts."""
        if config.memory_manager_policy != "Static":
            return
        from shim.memory.errors import MemoryManagerError
        from shim.memory.machine import validate_reserved_memory

        def quantities(amounts: dict[str, int]) -> dict[str, str]:
            return {name: format_quantity(name, amount) for name, amount in amounts.items()}

        reservations = [
            {"numaNode": node, "limits": quantities(limits)} for node, limits in sorted(config.reserved_memory.items())
        ]
        allocatable = quantities(config.node_allocatable_reservation())
        try:
            validate_reserved_memory(config.reserved_memory, allocatable, reservations)
        except MemoryManagerError as err:
            raise self.fail("reservedMemory", str(err)) from None

    def check_policy_options(self, config: Config) -> None:
        """The options' names, values and gates, with the kubelet's texts. Checks that need the
        machine (align-by-socket vs the topology, max-allowable-numa-nodes vs the node count)
        happen when the node starts."""
        from shim.cpu.errors import CPUManagerError
        from shim.cpu.options import FeatureGates, check_topology_manager_policy
        from shim.cpu.options import parse_policy_options as parse_cpu_options
        from shim.topology_manager.options import TopologyManagerError
        from shim.topology_manager.options import parse_policy_options as parse_tm_options

        if config.cpu_manager_policy == "static":
            try:
                options = parse_cpu_options(config.cpu_manager_policy_options, FeatureGates.of(config.feature_gates))
                check_topology_manager_policy(options, config.topology_manager_policy)
            except CPUManagerError as err:
                raise self.fail("cpuManagerPolicyOptions", str(err)) from None
        if config.topology_manager_policy != "none":
            try:
                parse_tm_options(config.topology_manager_policy_options, config.feature_gates)
            except TopologyManagerError as err:
                raise self.fail("topologyManagerPolicyOptions", str(err)) from None

    # field readers ------------------------------------------------------------------------
    def string(self, name: str, default: str) -> str:
        found = self.doc.get(name)
        if found is None:
            return default
        if not isinstance(found, str):
            raise self.fail(name, f"must be a string, got {found!r}")
        return found

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        found = self.string(name, default)
        if found not in allowed:
            raise self.fail(name, f'unknown policy: "{found}"' if "Policy" in name else f"unknown value {found!r}")
        return found

    def mapping(self, name: str) -> Mapping[str, Any]:
        found = self.doc.get(name)
        if found is None:
            return {}
        if not isinstance(found, Mapping):
            raise self.fail(name, f"must be a mapping, got {found!r}")
        return found

    def string_map(self, name: str) -> dict[str, str]:
        out = {}
        for key, item in self.mapping(name).items():
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int):
                raise self.fail(f"{name}.{key}", f"must be a string, got {item!r}")
            out[str(key)] = str(item)
        return out

    def quantity(self, name: str, resource: str, raw: object) -> int:
        try:
            return milli_value(str(raw)) if resource == "cpu" else value(str(raw))
        except QuantityError:
            raise self.fail(name, f"invalid quantity {raw!r}") from None

    def resource_map(self, name: str) -> dict[str, int]:
        return {
            str(resource): self.quantity(f"{name}.{resource}", str(resource), raw)
            for resource, raw in self.mapping(name).items()
        }

    def eviction_memory(self) -> int:
        raw = self.mapping("evictionHard").get("memory.available", DEFAULT_EVICTION_MEMORY)
        if isinstance(raw, str) and raw.endswith("%"):
            # A percentage depends on the node's capacity, which the kubelet resolves at run
            # time; podshim cannot check reservedMemory against it.
            raise self.fail("evictionHard.memory.available", f"percentages are not supported, got {raw!r}")
        try:
            return value(str(raw))
        except QuantityError:
            raise self.fail("evictionHard.memory.available", f"invalid quantity {raw!r}") from None

    def reserved_memory(self) -> dict[int, dict[str, int]]:
        found = self.doc.get("reservedMemory")
        if found is None:
            return {}
        if not isinstance(found, list):
            raise self.fail("reservedMemory", f"must be a list, got {found!r}")
        out: dict[int, dict[str, int]] = {}
        for index, item in enumerate(found):
            where = f"reservedMemory[{index}]"
            if not isinstance(item, Mapping):
                raise self.fail(where, f"must be a mapping, got {item!r}")
            node = item.get("numaNode")
            if isinstance(node, bool) or not isinstance(node, int) or node < 0:
                raise self.fail(f"{where}.numaNode", f"must be a non-negative integer, got {node!r}")
            limits = item.get("limits")
            if not isinstance(limits, Mapping):
                raise self.fail(f"{where}.limits", f"must be a mapping, got {limits!r}")
            per_node = out.setdefault(node, {})
            for resource, raw in limits.items():
                if str(resource) in per_node:
                    # The kubelet sums duplicates when it validates but keeps the last one when it
                    # reserves; refuse the ambiguity instead of reproducing it.
                    raise self.fail(f"{where}.limits.{resource}", f"NUMA node {node} reserves {resource} twice")
                per_node[str(resource)] = self.quantity(f"{where}.limits.{resource}", str(resource), raw)
        return out

    def duration(self, name: str, default: float) -> float:
        found = self.doc.get(name)
        if found is None:
            return default
        text = str(found)
        if text == "0" or re.fullmatch(_DURATION, text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(_DURATION_PART, text))
            return seconds
        raise self.fail(name, f"invalid duration {text!r}")


def format_quantity(resource: str, amount: int) -> str:
    """An amount as Kubernetes prints it in reservation errors (``"1Gi"``, ``"12"``)."""
    from shim.quantity import format_bytes, format_millis

    return format_millis(amount) if resource == "cpu" else format_bytes(amount)


__all__ = [
    "Config",
    "ConfigError",
    "config_from_mapping",
    "default_config",
    "format_quantity",
    "load_config",
    "parse_config",
    "parse_json_config",
    "read_config_document",
]
