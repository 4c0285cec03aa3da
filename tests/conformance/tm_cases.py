"""Loader for the topology manager conformance cases (../shared/conformance/topologymanager).

Turns the JSON encodings of SCHEMA.md into podshim values: hints, per-provider hint maps
(null vs {} vs [] kept apart), distance matrices and Pods (flattened pod format → Kubernetes
mapping → ``Pod.from_dict(..., apply_defaults=False)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared_paths import CONFORMANCE, case_list

from shim.pod import Pod
from shim.topology_manager import Bitmask, TopologyHint

TM_DIR = CONFORMANCE / "topologymanager"

# The kubelet's option tests register these names as alpha/beta options (policy_options_test.go).
FANCY_ALPHA_OPTIONS = ("fancy-alpha-option",)
FANCY_BETA_OPTIONS = ("fancy-new-option",)


def cases(file_name: str, *kinds: str) -> list[dict[str, Any]]:
    """The cases of one file, optionally only those of the given kinds."""
    found = case_list(TM_DIR / file_name)
    return [case for case in found if not kinds or case["kind"] in kinds]


def case_id(case: Mapping[str, Any]) -> str:
    return str(case["id"])


def mask(ids: Sequence[int] | None) -> Bitmask | None:
    return None if ids is None else Bitmask.from_bits(ids)


def hint(raw: Mapping[str, Any] | None) -> TopologyHint | None:
    if raw is None:
        return None
    return TopologyHint(mask(raw["numa"]), bool(raw["preferred"]))


def hint_list(raw: Sequence[Mapping[str, Any]] | None) -> list[TopologyHint] | None:
    if raw is None:
        return None
    return [TopologyHint(mask(item["numa"]), bool(item["preferred"])) for item in raw]


def provider_hints(raw: Mapping[str, Any] | None) -> dict[str, list[TopologyHint] | None] | None:
    """One provider's answer: null → None, {} → {}, resource → null | [] | [hints]."""
    if raw is None:
        return None
    return {resource: hint_list(hints) for resource, hints in raw.items()}


def providers_hints(raw: Sequence[Any]) -> list[dict[str, list[TopologyHint] | None] | None]:
    return [provider_hints(entry) for entry in raw]


def encode_hint(value: TopologyHint | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"numa": None if value.affinity is None else value.affinity.bits(), "preferred": value.preferred}


def distances(raw: Mapping[str, Sequence[int]] | Sequence[Sequence[int]] | None) -> dict[int, list[int]] | None:
    """Node id → distance row, from an object keyed by id or a list of rows."""
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        return {int(node): list(row) for node, row in raw.items()}
    return {node: list(row) for node, row in enumerate(raw)}


def pod(case: Mapping[str, Any]) -> Pod:
    """The case's flattened pod as a Pod (uid = case id; the kubelet's tests leave containers
    unnamed, podshim requires names, so unnamed ones get ``container-<n>``)."""
    raw = case["pod"]
    spec: dict[str, Any] = {
        "initContainers": _containers(raw.get("initContainers") or [], "init"),
        "containers": _containers(raw.get("containers") or [], "container"),
    }
    if raw.get("resources"):
        spec["resources"] = raw["resources"]
    uid = str(case["id"])
    return Pod.from_dict({"metadata": {"uid": uid, "name": raw.get("name") or uid}, "spec": spec}, apply_defaults=False)


def _containers(raw: Sequence[Mapping[str, Any]], prefix: str) -> list[dict[str, Any]]:
    out = []
    for index, container in enumerate(raw):
        item = dict(container)
        item["name"] = container.get("name") or f"{prefix}-{index}"
        item.setdefault("resources", {})
        out.append(item)
    return out
