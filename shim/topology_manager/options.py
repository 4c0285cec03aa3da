"""Topology manager configuration: policy and scope names, policy options (spec §2).

Error texts are the kubelet's. One deliberate difference: ``max-allowable-numa-nodes`` guards
the kubelet against its exponential merge; podshim's merge is not exponential, so when the
option is configured any node count is accepted. Without the option the kubelet's limit of 8
and its error stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

POLICY_NONE = "none"
POLICY_BEST_EFFORT = "best-effort"
POLICY_RESTRICTED = "restricted"
POLICY_SINGLE_NUMA_NODE = "single-numa-node"
POLICIES = (POLICY_NONE, POLICY_BEST_EFFORT, POLICY_RESTRICTED, POLICY_SINGLE_NUMA_NODE)

SCOPE_CONTAINER = "container"
SCOPE_POD = "pod"
SCOPES = (SCOPE_CONTAINER, SCOPE_POD)

PREFER_CLOSEST_NUMA_NODES = "prefer-closest-numa-nodes"
MAX_ALLOWABLE_NUMA_NODES = "max-allowable-numa-nodes"
DEFAULT_MAX_ALLOWABLE_NUMA_NODES = 8

ALPHA_GATE = "TopologyManagerPolicyAlphaOptions"
BETA_GATE = "TopologyManagerPolicyBetaOptions"
_GATE_DEFAULTS = {ALPHA_GATE: False, BETA_GATE: True}

# prefer-closest-numa-nodes is GA in the newest kubelet (available with any gates).
_STABLE_OPTIONS = frozenset({PREFER_CLOSEST_NUMA_NODES})
_BETA_OPTIONS = frozenset({MAX_ALLOWABLE_NUMA_NODES})
_ALPHA_OPTIONS: frozenset[str] = frozenset()


class TopologyManagerError(ValueError):
    """A configuration the kubelet refuses; ``str`` is the kubelet's error text."""


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class PolicyOptions(msgspec.Struct, frozen=True):
    """Parsed ``topologyManagerPolicyOptions``. ``max_allowable_configured`` records whether the
    user set ``max-allowable-numa-nodes`` (podshim then lifts the node-count limit)."""

    prefer_closest_numa: bool = False
    max_allowable_numa_nodes: int = DEFAULT_MAX_ALLOWABLE_NUMA_NODES
    max_allowable_configured: bool = False


def check_policy_name(name: str) -> str:
    if name not in POLICIES:
        raise TopologyManagerError(f'unknown policy: "{name}"')
    return name


def check_scope_name(name: str) -> str:
    if name not in SCOPES:
        raise TopologyManagerError(f'unknown scope: "{name}"')
    return name


def check_option_available(
    name: str,
    feature_gates: Mapping[str, bool] | None = None,
    *,
    extra_alpha: Iterable[str] = (),
    extra_beta: Iterable[str] = (),
) -> None:
    """The kubelet's ``CheckPolicyOptionAvailable``; ``extra_*`` register more option names (the
    kubelet's tests do that to exercise the gate checks)."""
    gates = {**_GATE_DEFAULTS, **(feature_gates or {})}
    alpha = _ALPHA_OPTIONS | frozenset(extra_alpha)
    beta = _BETA_OPTIONS | frozenset(extra_beta)
    if name not in alpha and name not in beta and name not in _STABLE_OPTIONS:
        raise TopologyManagerError(f'unknown Topology Manager Policy option: "{name}"')
    for level, names, gate in (("alpha", alpha, ALPHA_GATE), ("beta", beta, BETA_GATE)):
        if name in names and not gates[gate]:
            raise TopologyManagerError(
                f'topology manager policy {level}-level options not enabled, but option "{name}" provided'
            )


def parse_policy_options(
    raw: Mapping[str, str] | None,
    feature_gates: Mapping[str, bool] | None = None,
    *,
    extra_alpha: Iterable[str] = (),
    extra_beta: Iterable[str] = (),
) -> PolicyOptions:
    """The kubelet's ``NewPolicyOptions``. Options are checked in sorted name order (Go's map
    order is random, so which of several errors is reported is not fixed there)."""
    extra_alpha, extra_beta = tuple(extra_alpha), tuple(extra_beta)
    prefer_closest, max_nodes, configured = False, DEFAULT_MAX_ALLOWABLE_NUMA_NODES, False
    for name in sorted(raw or {}):
        value = (raw or {})[name]
        check_option_available(name, feature_gates, extra_alpha=extra_alpha, extra_beta=extra_beta)
        if name == PREFER_CLOSEST_NUMA_NODES:
            prefer_closest = parse_go_bool(name, value)
        elif name == MAX_ALLOWABLE_NUMA_NODES:
            max_nodes = _parse_go_int(name, value)
            if max_nodes < DEFAULT_MAX_ALLOWABLE_NUMA_NODES:
                raise TopologyManagerError(
                    f'the minimum value of "{name}" should not be less than {DEFAULT_MAX_ALLOWABLE_NUMA_NODES}'
                )
            configured = True
        # Registered extra options carry no behaviour (as in the kubelet's tests).
    return PolicyOptions(prefer_closest, max_nodes, configured)


def check_numa_node_count(count: int, options: PolicyOptions) -> None:
    """The kubelet's state-explosion guard, kept only while the user has not configured it."""
    if not options.max_allowable_configured and count > options.max_allowable_numa_nodes:
        limit = options.max_allowable_numa_nodes
        raise TopologyManagerError(f"unsupported on machines with more than {limit} NUMA Nodes")


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(name: str, value: str | bool) -> bool:
    """``strconv.ParseBool`` syntax; a real bool is taken as is."""
    if isinstance(value, bool):
        return value
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TopologyManagerError(f'bad value for option "{name}": strconv.ParseBool: parsing "{value}": invalid syntax')


def _parse_go_int(name: str, value: str) -> int:
    text = value[1:] if value[:1] in "+-" else value
    if not text.isascii() or not text.isdigit():
        raise TopologyManagerError(
            f'unable to convert policy option to integer "{name}": strconv.Atoi: parsing "{value}": invalid syntax'
        )
    return int(value)
