"""The CPU manager's state file (``cpu_manager_state``), byte-compatible with the kubelet.

Pure: text in, :class:`CPUState` out, and back. Reads V4 (dual checksum), V3 and V2 files with the
kubelet's fallback and checksum rules; writes V4 by default, V3 or V2 on request
(spec/cpu-manager.md §11). File access lives in ``shim.checkpoint.atomic``.
"""

from __future__ import annotations

from typing import Any

from shim.checkpoint import CORRUPTED, CheckpointError
from shim.checkpoint.envelope import data_checksum, fresh, load_enveloped, require_envelope_or_legacy, struct_checksum
from shim.checkpoint.godump import dump_for_hash
from shim.checkpoint.gojson import (
    Encoded,
    Field,
    GoCustom,
    GoJSONError,
    GoMap,
    GoString,
    GoStruct,
    GoUint,
    embedded,
    go_quote,
    marshal,
    quote,
    unmarshal,
)
from shim.checkpoint.gojson import (
    decode as go_decode,
)
from shim.checkpoint.members import MemberCache
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet, CPUSetParseError

__all__ = [
    "DEFAULT_PATH",
    "FORMATS",
    "CheckpointError",
    "EncodeCache",
    "checksum",
    "data_checksum",
    "decode",
    "encode",
    "legacy_checksum",
    "restore",
]

DEFAULT_PATH = "/var/lib/kubelet/cpu_manager_state"
FORMATS = ("v4", "v3", "v2")
_LEGACY_NAME = "state.CPUManagerCheckpoint"

# ---------------------------------------------------------------------------------------------
# Go types of pkg/kubelet/cm/cpumanager/state

_STRING = GoString("string")
_CHECKSUM = GoUint("checksum.Checksum")
_ENTRIES = GoMap("map[string]map[string]string", _STRING, GoMap("map[string]string", _STRING, _STRING))
_POD_ENTRY_JSON = GoStruct("state.podEntryJSON", (Field("CPUSet", "cpuSet", _STRING, omitempty=True),))


def _decode_pod_entry(raw: Any) -> CPUSet:
    # PodEntry.UnmarshalJSON: decode {"cpuSet": "..."} then parse the cpuset; errors abort decoding.
    value, error = go_decode(raw, _POD_ENTRY_JSON) if raw is not None else ({"CPUSet": ""}, None)
    if error is not None:
        raise error
    try:
        return CPUSet.parse(value["CPUSet"])
    except CPUSetParseError as parse_error:
        raise GoJSONError(f"failed to parse cpuset: {parse_error}") from None


# A checkpoint write prints every container's CPU set; most sets are unchanged since the last
# write, so their kubelet text is kept by mask value (bounded, cleared when full).
_TEXT_CACHE_LIMIT = 1 << 16
_texts: dict[int, str] = {}


def _text(cpus: CPUSet) -> str:
    text = _texts.get(cpus.mask)
    if text is None:
        if len(_texts) >= _TEXT_CACHE_LIMIT:
            _texts.clear()
        text = _texts[cpus.mask] = str(cpus)
    return text


def _marshal_pod_entry(cpus: CPUSet) -> str:
    text = _text(cpus)
    return "{" + ('"cpuSet":' + quote(text) if text else "") + "}"


def _dump_pod_entry(cpus: CPUSet, typed: bool) -> str:
    elems = " ".join(f"{cpu}:{{}}" for cpu in cpus)
    body = f"{{CPUSet:(cpuset.CPUSet){{elems:(map[int]struct {{}})map[{elems}]}}}}"
    return ("(state.PodEntry)" if typed else "") + body


_POD_ENTRY = GoCustom("state.PodEntry", _decode_pod_entry, _marshal_pod_entry, _dump_pod_entry, CPUSet)
_POD_ENTRIES = GoMap("state.PodCPUAssignments", _STRING, _POD_ENTRY)

_POLICY = Field("PolicyName", "policyName", _STRING)
_DEFAULT = Field("DefaultCPUSet", "defaultCpuSet", _STRING)
_ENTRIES_FIELD = Field("Entries", "entries", _ENTRIES, omitempty=True)
_POD_ENTRIES_FIELD = Field("PodEntries", "podEntries", _POD_ENTRIES, omitempty=True)
_CHECKSUM_FIELD = Field("Checksum", "checksum", _CHECKSUM)

_DATA = GoStruct("state.CPUManagerCheckpointData", (_POLICY, _DEFAULT, _ENTRIES_FIELD, _POD_ENTRIES_FIELD))
_V3_FIELDS = (_POLICY, _DEFAULT, _ENTRIES_FIELD, _POD_ENTRIES_FIELD, _CHECKSUM_FIELD)
_V3 = GoStruct("state.CPUManagerCheckpointV3", _V3_FIELDS)
_V2 = GoStruct("state.CPUManagerCheckpointV2", (_POLICY, _DEFAULT, _ENTRIES_FIELD, _CHECKSUM_FIELD))
_V1 = GoStruct(
    "state.CPUManagerCheckpointV1",
    (
        _POLICY,
        _DEFAULT,
        Field("Entries", "entries", GoMap("map[string]string", _STRING, _STRING), True),
        _CHECKSUM_FIELD,
    ),
)
_V4 = GoStruct(
    _LEGACY_NAME,
    (
        *embedded(_V3_FIELDS, "CPUManagerCheckpointV3"),
        Field("Data", "data", _STRING),
        Field("DataChecksum", "dataChecksum", _CHECKSUM),
    ),
)


# ---------------------------------------------------------------------------------------------
# Checksums


checksum = data_checksum


def _legacy_dump(value: dict[str, Any], typ: GoStruct, name: str) -> str:
    # dump.ForHash with the checksum zeroed, printed under the given struct name.
    zeroed = dict(value, Checksum=0)
    return dump_for_hash(zeroed, GoStruct(name, typ.fields))


_legacy_sum = struct_checksum


def legacy_checksum(state: CPUState, policy_name: str, *, format: str = "v3", type_name: str | None = None) -> int:
    """The legacy (V2/V3) ``checksum`` of ``state`` as the writer of that format computes it:
    the V3 or V2 struct shape hashed under ``state.CPUManagerCheckpoint`` unless ``type_name``
    names another (e.g. ``state.CPUManagerCheckpointV3``)."""
    typ = {"v3": _V3, "v2": _V2}[format]
    return _legacy_sum(_legacy_value(state, policy_name, typ), typ, type_name or _LEGACY_NAME)


def legacy_dump(value: dict[str, Any], format: str, type_name: str) -> str:
    """The hashed text of a legacy checkpoint struct (``format`` v3, v2 or v1) given as a dict of
    Go field values (``PolicyName``, ``DefaultCPUSet``, ``Entries``, ``PodEntries``)."""
    typ = {"v3": _V3, "v2": _V2, "v1": _V1}[format]
    full = {f.go_name: value.get(f.go_name, {} if isinstance(f.type, GoMap) else "") for f in typ.fields}
    return _legacy_dump(full, typ, type_name)


# ---------------------------------------------------------------------------------------------
# Reading


def _corrupt_v3(value: dict[str, Any]) -> bool:
    # V3 accepts its own name or the legacy name; a zero checksum is not special.
    expected: int = value["Checksum"]
    return expected not in (_legacy_sum(value, _V3, _V3.name), _legacy_sum(value, _V3, _LEGACY_NAME))


def _corrupt_v2(value: dict[str, Any], pod_level_gate: bool) -> bool:
    expected: int = value["Checksum"]
    if expected == 0:
        return False  # "empty checksum for compatibility with the old file backend"
    if not pod_level_gate and expected == _legacy_sum(value, _V2, _V2.name):
        return False
    return expected != _legacy_sum(value, _V2, _LEGACY_NAME)


def _load_legacy(text: str, pod_level_gate: bool) -> dict[str, Any]:
    """V3, falling back to V2; the result has the shape of the V4 data object."""
    value, error = unmarshal(text, _V3, fresh(_V3))
    if error is None and not _corrupt_v3(value):
        return dict(value)
    value, error = unmarshal(text, _V2, fresh(_V2))
    if error is not None:
        raise CheckpointError(str(error))
    if _corrupt_v2(value, pod_level_gate):
        raise CheckpointError(CORRUPTED)
    result: dict[str, Any] = dict(value, PodEntries={})
    return result


def _load(text: str, pod_level_gate: bool) -> dict[str, Any]:
    top, data, error = load_enveloped(text, _V4, _DATA, "cpu manager")
    if data is not None:
        return data
    require_envelope_or_legacy(top, error, "v4")
    return _load_legacy(text, pod_level_gate)


def _parse_cpuset(text: str, describe: str) -> CPUSet:
    try:
        return CPUSet.parse(text)
    except CPUSetParseError as error:
        raise CheckpointError(f"{describe}: {error}") from None


def decode(text: str, policy_name: str, *, pod_level_gate: bool = True) -> CPUState:
    """The state a kubelet configured with ``policy_name`` restores from the file ``text``.

    Raises :class:`CheckpointError` with the kubelet's (unwrapped) message; pod entries are kept
    only when ``pod_level_gate`` (``PodLevelResourceManagers``) is on."""
    data = _load(text, pod_level_gate)
    if data["PolicyName"] != policy_name:
        raise CheckpointError(
            f"configured policy {go_quote(policy_name)} differs from state checkpoint policy "
            f"{go_quote(data['PolicyName'])}"
        )
    default = _parse_cpuset(data["DefaultCPUSet"], f"could not parse default CPU set {go_quote(data['DefaultCPUSet'])}")
    assignments: dict[str, dict[str, CPUSet]] = {}
    # Go walks the maps in random order; sorted order makes the reported entry deterministic.
    for pod in sorted(data["Entries"] or {}):
        containers = data["Entries"][pod] or {}
        assignments[pod] = {}
        for container in sorted(containers):
            cpus = containers[container]
            describe = (
                f"could not parse cpuset {go_quote(cpus)} for container {go_quote(container)} in pod {go_quote(pod)}"
            )
            assignments[pod][container] = _parse_cpuset(cpus, describe)
    pod_entries = dict(data["PodEntries"] or {}) if pod_level_gate else {}
    return CPUState(default_cpuset=default, assignments=assignments, pod_entries=pod_entries)


def restore(
    text: str | None, policy_name: str, *, pod_level_gate: bool = True, path: str = DEFAULT_PATH
) -> tuple[CPUState, str | None]:
    """The kubelet's ``restoreState``: ``(state, text to write or None)``.

    No file (``text is None``): a fresh empty state and its checkpoint, to be written. Any error
    is wrapped in the kubelet's "please drain this node" message naming ``path``; a damaged file
    is never silently replaced."""
    if text is None:
        state = CPUState()
        return state, encode(state, policy_name, pod_level_gate=pod_level_gate)
    try:
        return decode(text, policy_name, pod_level_gate=pod_level_gate), None
    except CheckpointError as error:
        raise CheckpointError(
            f"could not restore state from checkpoint: {error}, please drain this node and delete the CPU manager "
            f"checkpoint file {go_quote(path)} before restarting Kubelet"
        ) from error


# ---------------------------------------------------------------------------------------------
# Writing


def _legacy_value(
    state: CPUState, policy_name: str, typ: GoStruct, *, pod_level_gate: bool = True, entries: bool = True
) -> dict[str, Any]:
    """The struct's Go value; ``entries`` False leaves ``Entries`` empty (the caller fills it)."""
    value: dict[str, Any] = {
        "PolicyName": policy_name,
        "DefaultCPUSet": _text(state.default_cpuset),
        "Entries": (
            {pod: _go_containers(containers) for pod, containers in state.assignments.items()} if entries else {}
        ),
        "Checksum": 0,
    }
    if any(f.go_name == "PodEntries" for f in typ.fields):
        value["PodEntries"] = dict(state.pod_entries) if pod_level_gate else {}
    return value


def _go_containers(containers: dict[str, CPUSet]) -> dict[str, str]:
    return {name: _text(cpus) for name, cpus in containers.items()}


class EncodeCache:
    """What one manager's V4 checkpoint writes can share: the JSON text of each pod's entries,
    reused while unchanged (a decision changes one pod; the others are copied as text). The
    output is the same with or without it."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries = MemberCache(_ENTRIES.elem, dump=False)

    def encoded_entries(self, state: CPUState) -> dict[str, Any]:
        entries = {
            pod: self.entries.get(
                pod, tuple([(name, cpus.mask) for name, cpus in containers.items()]), _go_containers, containers
            )
            for pod, containers in state.assignments.items()
        }
        self.entries.keep_only(entries)
        return entries


def encode(
    state: CPUState,
    policy_name: str,
    *,
    format: str = "v4",
    pod_level_gate: bool = True,
    cache: EncodeCache | None = None,
) -> str:
    """The file the kubelet writes for ``state``: ``v4`` (default, dual checksum), ``v3`` or
    ``v2`` (legacy checksum under the legacy struct name). Pod entries are written only when
    ``pod_level_gate`` is on (never in ``v2``). ``cache`` (one per writer, V4 only) lets
    successive writes reuse the text of unchanged pods."""
    if format == "v4":
        data = _legacy_value(state, policy_name, _V3, pod_level_gate=pod_level_gate, entries=cache is None)
        if cache is not None:
            data["Entries"] = cache.encoded_entries(state)
        del data["Checksum"]
        # The data object and the top level carry the same entries: encode them once.
        data["Entries"] = Encoded(marshal(data["Entries"], _ENTRIES), empty=not data["Entries"])
        data["PodEntries"] = Encoded(marshal(data["PodEntries"], _POD_ENTRIES), empty=not data["PodEntries"])
        data_text = marshal(data, _DATA)
        top = dict(data, Checksum=0, Data=data_text, DataChecksum=data_checksum(data_text))
        return marshal(top, _V4)
    typ = {"v3": _V3, "v2": _V2}.get(format)
    if typ is None:
        raise ValueError(f"unknown CPU checkpoint format {format!r} (expected one of {', '.join(FORMATS)})")
    value = _legacy_value(state, policy_name, typ, pod_level_gate=pod_level_gate)
    value["Checksum"] = _legacy_sum(value, typ, _LEGACY_NAME)
    return marshal(value, typ)
