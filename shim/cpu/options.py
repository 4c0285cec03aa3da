"""Static policy options (``cpuManagerPolicyOptions``) and the feature gates the CPU manager reads.

Spec: cpu-manager.md §3. Parsing follows the kubelet's NewStaticPolicyOptions and
ValidateStaticPolicyOptions, error texts included. Option maturity changes between releases, so
the table is a parameter (``DEFAULT_OPTION_MATURITY`` is the 1.32–1.34 one the spec gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from shim.cpu.errors import PolicyOptionError
from shim.topology.model import CPUTopology

Maturity = Literal["alpha", "beta", "ga"]

FULL_PCPUS_ONLY = "full-pcpus-only"
DISTRIBUTE_CPUS_ACROSS_NUMA = "distribute-cpus-across-numa"
ALIGN_BY_SOCKET = "align-by-socket"
DISTRIBUTE_CPUS_ACROSS_CORES = "distribute-cpus-across-cores"
STRICT_CPU_RESERVATION = "strict-cpu-reservation"
PREFER_ALIGN_CPUS_BY_UNCORECACHE = "prefer-align-cpus-by-uncorecache"

DEFAULT_OPTION_MATURITY: Mapping[str, Maturity] = {
    FULL_PCPUS_ONLY: "ga",
    DISTRIBUTE_CPUS_ACROSS_NUMA: "beta",
    ALIGN_BY_SOCKET: "alpha",
    DISTRIBUTE_CPUS_ACROSS_CORES: "alpha",
    STRICT_CPU_RESERVATION: "beta",
    PREFER_ALIGN_CPUS_BY_UNCORECACHE: "beta",
}

# Feature gates (names as in the kubelet) and their defaults in Kubernetes 1.36.
POD_LEVEL_RESOURCES = "PodLevelResources"
POD_LEVEL_RESOURCE_MANAGERS = "PodLevelResourceManagers"
CPU_MANAGER_POLICY_ALPHA_OPTIONS = "CPUManagerPolicyAlphaOptions"
CPU_MANAGER_POLICY_BETA_OPTIONS = "CPUManagerPolicyBetaOptions"
DISABLE_CPU_QUOTA_WITH_EXCLUSIVE_CPUS = "DisableCPUQuotaWithExclusiveCPUs"

DEFAULT_FEATURE_GATES: Mapping[str, bool] = {
    POD_LEVEL_RESOURCES: True,
    POD_LEVEL_RESOURCE_MANAGERS: False,
    CPU_MANAGER_POLICY_ALPHA_OPTIONS: False,
    CPU_MANAGER_POLICY_BETA_OPTIONS: True,
    DISABLE_CPU_QUOTA_WITH_EXCLUSIVE_CPUS: True,
}


# A msgspec Struct rather than a dataclass: the OCI hook imports this module on every container
# start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class FeatureGates(msgspec.Struct, frozen=True, weakref=True):
    """The gates the CPU manager reads; unknown gates are kept but ignored."""

    values: Mapping[str, bool]

    @classmethod
    def of(cls, overrides: Mapping[str, bool] | None = None) -> FeatureGates:
        return cls({**DEFAULT_FEATURE_GATES, **(overrides or {})})

    def enabled(self, name: str) -> bool:
        return bool(self.values.get(name, False))

    @property
    def pod_level_resources(self) -> bool:
        return self.enabled(POD_LEVEL_RESOURCES)

    @property
    def pod_level_managers(self) -> bool:
        """KEP-5526 is active only with both gates on."""
        return self.enabled(POD_LEVEL_RESOURCES) and self.enabled(POD_LEVEL_RESOURCE_MANAGERS)


class StaticPolicyOptions(msgspec.Struct, frozen=True, weakref=True):
    """The kubelet's StaticPolicyOptions (Go field names in ``GO_FIELDS``)."""

    full_physical_cpus_only: bool = False
    distribute_cpus_across_numa: bool = False
    align_by_socket: bool = False
    distribute_cpus_across_cores: bool = False
    strict_cpu_reservation: bool = False
    prefer_align_by_uncore_cache: bool = False

    def go_fields(self) -> dict[str, bool]:
        """The fields under their Go names, for comparing with the kubelet's tests."""
        return {go: getattr(self, name) for name, go in GO_FIELDS.items()}


GO_FIELDS: Mapping[str, str] = {
    "full_physical_cpus_only": "FullPhysicalCPUsOnly",
    "distribute_cpus_across_numa": "DistributeCPUsAcrossNUMA",
    "align_by_socket": "AlignBySocket",
    "distribute_cpus_across_cores": "DistributeCPUsAcrossCores",
    "strict_cpu_reservation": "StrictCPUReservation",
    "prefer_align_by_uncore_cache": "PreferAlignByUncoreCacheOption",
}

_FIELD_OF_OPTION: Mapping[str, str] = {
    FULL_PCPUS_ONLY: "full_physical_cpus_only",
    DISTRIBUTE_CPUS_ACROSS_NUMA: "distribute_cpus_across_numa",
    ALIGN_BY_SOCKET: "align_by_socket",
    DISTRIBUTE_CPUS_ACROSS_CORES: "distribute_cpus_across_cores",
    STRICT_CPU_RESERVATION: "strict_cpu_reservation",
    PREFER_ALIGN_CPUS_BY_UNCORECACHE: "prefer_align_by_uncore_cache",
}

_INCOMPATIBLE = (
    (FULL_PCPUS_ONLY, DISTRIBUTE_CPUS_ACROSS_CORES),
    (DISTRIBUTE_CPUS_ACROSS_NUMA, DISTRIBUTE_CPUS_ACROSS_CORES),
    (PREFER_ALIGN_CPUS_BY_UNCORECACHE, DISTRIBUTE_CPUS_ACROSS_CORES),
    (PREFER_ALIGN_CPUS_BY_UNCORECACHE, DISTRIBUTE_CPUS_ACROSS_NUMA),
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, with its error text."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def check_option_available(name: str, gates: FeatureGates,
                           maturity: Mapping[str, Maturity] = DEFAULT_OPTION_MATURITY) -> None:
    level = maturity.get(name)
    if level is None:
        raise PolicyOptionError(f'unknown CPU Manager Policy option: "{name}"')
    if level == "alpha" and not gates.enabled(CPU_MANAGER_POLICY_ALPHA_OPTIONS):
        raise PolicyOptionError(f'CPU Manager Policy Alpha-level Options not enabled, but option "{name}" provided')
    if level == "beta" and not gates.enabled(CPU_MANAGER_POLICY_BETA_OPTIONS):
        raise PolicyOptionError(f'CPU Manager Policy Beta-level Options not enabled, but option "{name}" provided')


def parse_policy_options(options: Mapping[str, str] | None, gates: FeatureGates | None = None,
                         maturity: Mapping[str, Maturity] = DEFAULT_OPTION_MATURITY) -> StaticPolicyOptions:
    """NewStaticPolicyOptions. Options are checked in the mapping's order (Go's is random)."""
    gates = gates or FeatureGates.of()
    values: dict[str, bool] = {}
    for name, text in (options or {}).items():
        check_option_available(name, gates, maturity)
        field = _FIELD_OF_OPTION.get(name)
        if field is None:  # known to the maturity table but not to this code
            raise PolicyOptionError(f'unsupported cpumanager option: "{name}" ({text})')
        try:
            values[field] = parse_bool(str(text))
        except ValueError as err:
            raise PolicyOptionError(f'bad value for option "{name}": {err}') from None
    for first, second in _INCOMPATIBLE:
        if values.get(_FIELD_OF_OPTION[first]) and values.get(_FIELD_OF_OPTION[second]):
            raise PolicyOptionError(f"static policy options {first} and {second} can not be used at the same time")
    return StaticPolicyOptions(**values)


def validate_policy_options(options: StaticPolicyOptions, topology: CPUTopology, topology_manager_policy: str) -> None:
    """ValidateStaticPolicyOptions: align-by-socket against the machine and the TM policy."""
    if not options.align_by_socket:
        return
    check_topology_manager_policy(options, topology_manager_policy)
    if topology.num_sockets > topology.num_numa_nodes:
        raise PolicyOptionError(
            "Align by socket is not compatible with hardware where number of sockets are more than number of NUMA"
        )


def check_topology_manager_policy(options: StaticPolicyOptions, topology_manager_policy: str) -> None:
    """The part of ValidateStaticPolicyOptions that needs no machine (configuration checks)."""
    if options.align_by_socket and topology_manager_policy == "single-numa-node":
        # "Topolgy" is the kubelet's spelling.
        raise PolicyOptionError(
            f"Topolgy manager single-numa-node policy is incompatible with CPUManager {ALIGN_BY_SOCKET} policy option"
        )
