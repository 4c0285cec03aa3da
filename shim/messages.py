"""Every message that crosses an actor boundary, as frozen msgspec Structs in one tagged union.

A message is encoded as a mapping whose ``"type"`` field is the class name (``{"type":
"AdmitPod", ...}``), in JSON (traces, tiny clients) or msgpack (the daemon socket), and decodes
back to an equal object. Messages carry only plain data: pods travel as :class:`shim.pod.Pod`
(itself a msgspec Struct, integers only), CPU sets as the kubelet's text (``"0-3,7"``), NUMA
affinities as lists of node ids, the topology as :class:`TopologyWire`. A resource's hints are
either an explicit list of :class:`HintWire` or, for the compact form a provider may give on a
many-node machine, one :class:`SupersetWire` (a JSON object where the list is a JSON array, so
the two never collide).

Families:

- external inputs: :class:`AdmitPod`, :class:`RemoveContainer`, :class:`RemovePod`,
  :class:`ContainerCreated`, :class:`DiscoverTopology`, :class:`TopologyDiscovered`,
  :class:`TopologyFailed`, :class:`Reconcile`;
- hint providers (CPU, memory, devices) ↔ arbiter: :class:`HintsRequest`, :class:`Hints`,
  :class:`AllocateRequest`, :class:`Allocated`, :class:`AllocationFailed`, :class:`Release`,
  :class:`Commit`;
- admission outcomes: :class:`Admitted`, :class:`Rejected`;
- cgroup writer: :class:`Apply`, :class:`Applied`, :class:`ApplyFailed`.

This module must stay importable without trio (the OCI hook imports it).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, Literal, TypeAlias

import msgspec

from shim.cpuset import CPUSet
from shim.pod import ContainerKind, Pod
from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import FrozenHints, TopologyHint
from shim.topology_manager.hint_set import SupersetHints

Isolation = Literal["container", "pod", "host"]
CPUQuota = Literal["unlimited", "limited"]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the untagged value types nested inside messages."""


class MessageBase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag=True, tag_field="type"):
    """Base of every message: the ``type`` tag is the class name."""


# --- wire forms of domain values ---------------------------------------------------------


class HintWire(_Wire, frozen=True, kw_only=True, gc=False):
    """A TopologyHint on the wire: ``numa`` None = no preference, ``[]`` = an empty mask.

    Not tracked by the cyclic garbage collector (it holds only ints: no cycle is possible): a
    16-node machine keeps tens of thousands of them cached, which full collections would
    otherwise walk on every pass."""

    numa: tuple[int, ...] | None
    preferred: bool

    @classmethod
    def from_hint(cls, hint: TopologyHint) -> HintWire:
        return _wire_of(hint)

    def to_hint(self) -> TopologyHint:
        return _hint_of(self)


# A 16-node machine's memory hints are thousands per resource and per message, drawn from at
# most 2**16 masks, and the providers hand out interned hint objects. So each hint object's
# wire object (and each wire object's hint) is looked up by identity, a whole list at a time
# with C-level loops, and built only once per mask (hints, wires and id tuples are immutable).
# Every cache is cleared when it reaches _CACHE_LIMIT entries: a long-lived daemon fed
# arbitrary hints cannot grow them without bound.
_CACHE_LIMIT = 1 << 18


class _ByIdentity:
    """Values keyed by the identity of live objects: each key object is kept alive, so no other
    object can take its id while the entry exists."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self._kept: dict[int, object] = {}

    def get(self, key: object) -> Any:
        return self.values.get(id(key))

    def get_many(self, keys: Iterable[object]) -> list[Any]:
        return list(map(self.values.get, map(id, keys)))

    def put(self, key: object, value: Any) -> None:
        if len(self._kept) >= _CACHE_LIMIT:
            self.values.clear()  # before the objects that guard the ids go
            self._kept.clear()
        self._kept[id(key)] = key
        self.values[id(key)] = value

    def put_many(self, keys: list[object], values: list[Any]) -> None:
        if len(self._kept) + len(keys) > _CACHE_LIMIT:
            self.values.clear()
            self._kept.clear()
        ids = list(map(id, keys))
        self._kept.update(zip(ids, keys, strict=True))
        self.values.update(zip(ids, values, strict=True))


_wire_by_hint = _ByIdentity()
_hint_by_wire = _ByIdentity()
_wires: tuple[dict[int, HintWire], dict[int, HintWire]] = ({}, {})  # [preferred][mask value]
_hints: tuple[dict[tuple[int, ...], TopologyHint], dict[tuple[int, ...], TopologyHint]] = ({}, {})
_ids_of_value: dict[int, tuple[int, ...]] = {}
_value_of_ids: dict[tuple[int, ...], int] = {}
_ANY_WIRES = (HintWire(numa=None, preferred=False), HintWire(numa=None, preferred=True))
_ANY_HINTS = (TopologyHint(None, False), TopologyHint(None, True))


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    return cache


# The node ids of each byte value in the two low bytes of a mask; built on first use (the OCI
# hook imports this module on every container start and may never convert a mask).
_BYTE_IDS: list[list[tuple[int, ...]]] = []


def _byte_ids() -> list[list[tuple[int, ...]]]:
    if not _BYTE_IDS:
        _BYTE_IDS.extend(
            [tuple(8 * pos + bit for bit in range(8) if byte >> bit & 1) for byte in range(256)] for pos in range(2)
        )
    return _BYTE_IDS


def _ids(value: int) -> tuple[int, ...]:
    """The node ids of a mask value, ascending."""
    ids = _ids_of_value.get(value)
    if ids is None:
        if 0 <= value < 1 << 16:  # up to 16 nodes: two table lookups
            table = _BYTE_IDS or _byte_ids()
            ids = table[0][value & 0xFF] + table[1][value >> 8]
        else:
            ids = tuple(Bitmask(value).bits())
        _bounded(_ids_of_value)[value] = ids
    return ids


def _value(ids: Sequence[int]) -> int:
    """The mask value of node ids; raises BitmaskError for an id outside 0..63."""
    key = ids if isinstance(ids, tuple) else tuple(ids)
    value = _value_of_ids.get(key)
    if value is None:
        value = _bounded(_value_of_ids)[key] = Bitmask.from_bits(key).value
    return value


def _wire_of(hint: TopologyHint) -> HintWire:
    found: HintWire | None = _wire_by_hint.get(hint)
    if found is not None:
        return found
    preferred = bool(hint.preferred)
    if hint.affinity is None:
        return _ANY_WIRES[preferred]
    value = hint.affinity.value
    wire = _wires[preferred].get(value)
    if wire is None:
        wire = _bounded(_wires[preferred])[value] = HintWire(numa=_ids(value), preferred=preferred)
        _hint_by_wire.put(wire, hint)
    _wire_by_hint.put(hint, wire)
    return wire


def _hint_of(wire: HintWire) -> TopologyHint:
    found: TopologyHint | None = _hint_by_wire.get(wire)
    if found is not None:
        return found
    preferred = bool(wire.preferred)
    if wire.numa is None:
        return _ANY_HINTS[preferred]
    # A decoded wire (trace, socket): not kept by identity, but its hint is shared by node ids.
    hint = _hints[preferred].get(wire.numa)
    if hint is None:
        hint = _bounded(_hints[preferred])[wire.numa] = TopologyHint(Bitmask(_value(wire.numa)), preferred)
    return hint


def _any_none(values: list[Any]) -> bool:
    # C-level scan by identity (``None in values`` would call the items' __eq__).
    return any(map(operator.is_, values, repeat(None)))


class _Recent:
    """The last few whole hint lists converted, by identity, both ways: a provider hands out the
    same :class:`FrozenHints` for equal answers, and the arbiter receives the very wire tuple
    made from it, so neither side converts tens of thousands of hints again. Only immutable
    keys are used (FrozenHints, tuples of wires), so an entry can never go stale."""

    LIMIT = 8

    def __init__(self) -> None:
        self.values = _ByIdentity()
        self.size = 0

    def get(self, key: object) -> Any:
        return self.values.get(key)

    def put(self, key: object, value: Any) -> None:
        if self.size >= self.LIMIT:
            self.values = _ByIdentity()
            self.size = 0
        self.values.put(key, value)
        self.size += 1


_recent_wires = _Recent()  # FrozenHints -> tuple of wires
_recent_hints = _Recent()  # tuple of wires -> FrozenHints


def _wires_of(hints: Sequence[TopologyHint]) -> tuple[HintWire, ...]:
    if type(hints) is not FrozenHints:
        return _convert_to_wires(hints)
    wires: tuple[HintWire, ...] | None = _recent_wires.get(hints)
    if wires is None:
        wires = _convert_to_wires(hints) if hints.segments is None else _segment_wires(hints.segments)
        _recent_wires.put(hints, wires)
        _recent_hints.put(wires, hints)
    return wires


def _hints_of(wires: tuple[HintWire, ...]) -> list[TopologyHint]:
    hints: FrozenHints | None = _recent_hints.get(wires)
    if hints is None:
        hints = FrozenHints(_convert_to_hints(wires))
        _recent_hints.put(wires, hints)
    return hints


def _segment_wires(segments: Iterable[tuple[bool, Sequence[int]]]) -> tuple[HintWire, ...]:
    """The wires of a FrozenHints given by its mask segments, looked up by mask value (small int
    keys: far cheaper than identity lookups of tens of thousands of hint objects)."""
    parts: list[list[HintWire]] = []
    for preferred, masks in segments:
        table = _wires[preferred]
        found: list[HintWire | None] = list(map(table.get, masks))
        if _any_none(found):
            for index, wire in enumerate(found):
                if wire is None:
                    value = masks[index]
                    found[index] = _bounded(table)[value] = HintWire(numa=_ids(value), preferred=preferred)
        parts.append(found)  # type: ignore[arg-type]  # no None left
    return tuple(chain.from_iterable(parts))


def _convert_to_wires(hints: Sequence[TopologyHint]) -> tuple[HintWire, ...]:
    found = _wire_by_hint.get_many(hints)
    if _any_none(found):
        _fill_wires(hints, found)
    return tuple(found)


def _fill_wires(hints: Sequence[TopologyHint], found: list[HintWire | None]) -> None:
    """``_wire_of`` for every hint whose slot in ``found`` is None, with the caches updated in
    bulk: a list seen for the first time (a 16-node machine's 65,535 hints) costs one pass."""
    missing = [index for index, wire in enumerate(found) if wire is None]
    sources = [hints[index] for index in missing]
    made: list[HintWire] = []
    made_for: list[TopologyHint] = []
    for index, hint in zip(missing, sources, strict=True):
        preferred = bool(hint.preferred)
        if hint.affinity is None:
            found[index] = _ANY_WIRES[preferred]
            continue
        value = hint.affinity.value
        table = _wires[preferred]
        wire = table.get(value)
        if wire is None:
            wire = HintWire(numa=_ids(value), preferred=preferred)
            _bounded(table)[value] = wire
            made.append(wire)
            made_for.append(hint)
        found[index] = wire
    _hint_by_wire.put_many(list(made), made_for)
    _wire_by_hint.put_many(list(sources), [found[index] for index in missing])


def _convert_to_hints(wires: Sequence[HintWire]) -> list[TopologyHint]:
    found = _hint_by_wire.get_many(wires)
    if _any_none(found):
        for index, hint in enumerate(found):
            if hint is None:
                found[index] = _hint_of(wires[index])
    return found


def hint_to_wire(hint: TopologyHint | None) -> HintWire | None:
    """The wire form of an optional hint (None stays None: the provider got no hint)."""
    return None if hint is None else _wire_of(hint)


def hint_from_wire(hint: HintWire | None) -> TopologyHint | None:
    return None if hint is None else _hint_of(hint)


def _by_width(values: Iterable[int]) -> list[int]:
    return sorted(values, key=lambda value: (value.bit_count(), value))


class SupersetWire(_Wire, frozen=True, kw_only=True):
    """A :class:`SupersetHints` on the wire: every mask between one of ``minimal`` and
    ``universe``; ``preferred`` lists the preferred members. Masks are lists of NUMA ids; the
    minimal and preferred masks are ordered by node count, then value (the sender's order)."""

    minimal: tuple[tuple[int, ...], ...]
    universe: tuple[int, ...]
    preferred: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def from_hints(cls, hints: SupersetHints) -> SupersetWire:
        return cls(
            minimal=tuple(map(_ids, hints.minimal)),
            universe=_ids(hints.universe),
            preferred=tuple(map(_ids, _by_width(hints.preferred))),
        )

    def to_hints(self) -> SupersetHints:
        """The hint set; raises ValueError (BitmaskError) for ids outside 0..63, a mask outside
        the universe, minimal masks out of order or repeated, or a preferred non-member.

        The minimal masks are taken as the antichain the sender computed (checking that pairwise
        is quadratic in the thousands of masks a 16-node CPU answer may carry); a redundant
        entry would not change which masks are members.
        """
        universe = _value(self.universe)
        minimal = [_value(ids) for ids in self.minimal]
        if _by_width(set(minimal)) != minimal:
            raise ValueError("minimal masks must be distinct and ordered by node count, then value")
        if any(value & ~universe for value in minimal):
            raise ValueError("a minimal mask has nodes outside the universe")
        hints = SupersetHints.trusted(minimal, universe, (_value(ids) for ids in self.preferred))
        known = set(minimal)
        for value in hints.preferred:
            if value not in known and not hints.contains(value):
                raise ValueError(f"preferred mask {list(_ids(value))} is not a member")
        return hints


class CPUWire(_Wire, frozen=True, kw_only=True):
    """One logical CPU of the topology (same fields as the topology JSON file)."""

    id: int
    socket: int
    core: int
    numa: int
    uncore: int


class NUMAWire(_Wire, frozen=True, kw_only=True):
    """One NUMA node: CPUs as kubelet text, memory and huge pages in bytes, its distance row."""

    id: int
    cpus: str
    memory: int
    hugepages: dict[str, int] = msgspec.field(default_factory=dict)
    distances: tuple[int, ...] = ()


class DeviceWire(_Wire, frozen=True, kw_only=True):
    """A PCI device or network interface and its NUMA node."""

    name: str
    kind: str
    numa: int | None
    local_cpus: str = ""
    pci_class: str | None = None


class TopologyWire(_Wire, frozen=True, kw_only=True):
    """A :class:`shim.topology.Topology` on the wire, counters included (they are given
    explicitly, not derived, because the kubelet's algorithms branch on them)."""

    num_cpus: int
    num_cores: int
    num_sockets: int
    num_numa_nodes: int
    num_uncore_caches: int
    cpus: tuple[CPUWire, ...]
    numa: tuple[NUMAWire, ...]
    allowed_cpus: str
    allowed_mems: str
    devices: tuple[DeviceWire, ...] = ()
    uncore_groups: dict[int, str] = msgspec.field(default_factory=dict)

    @classmethod
    def from_topology(cls, topology: Topology) -> TopologyWire:
        cpu = topology.cpu
        return cls(
            num_cpus=cpu.num_cpus,
            num_cores=cpu.num_cores,
            num_sockets=cpu.num_sockets,
            num_numa_nodes=cpu.num_numa_nodes,
            num_uncore_caches=cpu.num_uncore_caches,
            cpus=tuple(
                CPUWire(id=cpu_id, socket=info.socket, core=info.core, numa=info.numa, uncore=info.uncore)
                for cpu_id, info in sorted(cpu.details.items())
            ),
            numa=tuple(
                NUMAWire(
                    id=node.id,
                    cpus=str(node.cpus),
                    memory=node.memory,
                    hugepages=dict(node.hugepages),
                    distances=tuple(node.distances),
                )
                for node in topology.numa
            ),
            allowed_cpus=str(topology.allowed_cpus),
            allowed_mems=str(topology.allowed_mems),
            devices=tuple(
                DeviceWire(
                    name=device.name,
                    kind=device.kind,
                    numa=device.numa,
                    local_cpus=str(device.local_cpus),
                    pci_class=device.pci_class,
                )
                for device in topology.devices
            ),
            uncore_groups={uncore: str(cpus) for uncore, cpus in sorted(topology.uncore_groups.items())},
        )

    def to_topology(self) -> Topology:
        details = {
            cpu.id: CPUInfo(socket=cpu.socket, core=cpu.core, numa=cpu.numa, uncore=cpu.uncore) for cpu in self.cpus
        }
        return Topology(
            cpu=CPUTopology(
                num_cpus=self.num_cpus,
                num_cores=self.num_cores,
                num_sockets=self.num_sockets,
                num_numa_nodes=self.num_numa_nodes,
                num_uncore_caches=self.num_uncore_caches,
                details=details,
            ),
            numa=tuple(
                NUMANode(
                    id=node.id,
                    cpus=CPUSet.parse(node.cpus),
                    memory=node.memory,
                    hugepages=dict(node.hugepages),
                    distances=tuple(node.distances),
                )
                for node in self.numa
            ),
            allowed_cpus=CPUSet.parse(self.allowed_cpus),
            allowed_mems=CPUSet.parse(self.allowed_mems),
            devices=tuple(
                Device(
                    name=device.name,
                    kind=device.kind,
                    numa=device.numa,
                    local_cpus=CPUSet.parse(device.local_cpus),
                    pci_class=device.pci_class,
                )
                for device in self.devices
            ),
            uncore_groups={uncore: CPUSet.parse(cpus) for uncore, cpus in self.uncore_groups.items()},
        )


class ContainerPlacement(_Wire, frozen=True, kw_only=True):
    """What one provider decided for one container. A field left None is not this provider's
    business (the CPU manager sets ``cpus`` and ``isolation``, the memory manager ``mems``)."""

    container: str
    cpus: str | None = None
    mems: tuple[int, ...] | None = None
    isolation: Isolation | None = None


class MemoryAssignment(_Wire, frozen=True, kw_only=True):
    """Memory held for a pod or container: the NUMA nodes and the amount in bytes."""

    numa: tuple[int, ...]
    size: int = msgspec.field(name="bytes")


class PodAssignment(_Wire, frozen=True, kw_only=True):
    """The pod's bubble (pod scope with pod-level resources): CPUs as kubelet text and memory."""

    cpus: str = ""
    memory: MemoryAssignment | None = None


class ContainerAssignment(_Wire, frozen=True, kw_only=True):
    """The outcome for one container: CPUs and memory nodes (cpuset text, what the cgroup
    gets), isolation level and the CFS quota decision (``cpu_limit_millis`` is the limit kept
    when ``cpu_quota`` is ``limited`` and the container has a CPU limit)."""

    name: str
    kind: ContainerKind
    cpus: str
    mems: str
    isolation: Isolation
    cpu_quota: CPUQuota
    cpu_limit_millis: int | None = None


# --- external inputs ---------------------------------------------------------------------


class AdmitPod(MessageBase, frozen=True, kw_only=True):
    """Admit a pod (from the CLI, the daemon socket or the hook)."""

    pod: Pod

    @property
    def pod_uid(self) -> str:
        return self.pod.uid


class RemoveContainer(MessageBase, frozen=True, kw_only=True):
    """A container stopped or was deleted."""

    pod_uid: str
    container: str


class RemovePod(MessageBase, frozen=True, kw_only=True):
    """A pod is gone: release everything it holds."""

    pod_uid: str


class ContainerCreated(MessageBase, frozen=True, kw_only=True):
    """A container's cgroup exists (the hook's createRuntime, or the daemon's reconcile)."""

    pod_uid: str
    container: str
    cgroup: str
    pid: int | None = None


class DiscoverTopology(MessageBase, frozen=True, kw_only=True):
    """Ask the topology actor to (re)discover the machine."""


class TopologyDiscovered(MessageBase, frozen=True, kw_only=True):
    """The machine's topology, from discovery or a topology file."""

    topology: TopologyWire


class TopologyFailed(MessageBase, frozen=True, kw_only=True):
    """Discovery failed; ``message`` names the path and the problem."""

    message: str


class Reconcile(MessageBase, frozen=True, kw_only=True):
    """Periodic reconcile tick (the kubelet's cpuManagerReconcilePeriod)."""


# --- hint providers <-> arbiter ----------------------------------------------------------


class HintsRequest(MessageBase, frozen=True, kw_only=True):
    """Arbiter → provider: hints for one container, or for the whole pod (``container`` None)."""

    pod: Pod
    container: str | None = None

    @property
    def pod_uid(self) -> str:
        return self.pod.uid


ResourceHints: TypeAlias = dict[str, tuple[HintWire, ...] | SupersetWire | None]
# One resource's hints as the topology manager takes them (None = no NUMA preference).
ProvidedHints: TypeAlias = Sequence[TopologyHint] | SupersetHints | None


class Hints(MessageBase, frozen=True, kw_only=True):
    """Provider → arbiter. ``hints`` None: the provider has no hints at all; per resource, None
    means no NUMA preference and an empty list means no possible placement."""

    provider: str
    pod_uid: str
    container: str | None = None
    hints: ResourceHints | None = None

    def to_provider_hints(self) -> dict[str, list[TopologyHint] | SupersetHints | None] | None:
        """The form ``shim.topology_manager.merge`` takes for one provider (a compact hint set
        stays a :class:`SupersetHints`, never expanded)."""
        if self.hints is None:
            return None
        return {resource: _from_wire(hints) for resource, hints in self.hints.items()}

    @staticmethod
    def wire(hints: Mapping[str, ProvidedHints] | None) -> ResourceHints | None:
        """The wire form of a provider's ``hints()`` / ``pod_hints()`` result."""
        if hints is None:
            return None
        return {resource: _to_wire(found) for resource, found in hints.items()}


def _from_wire(hints: tuple[HintWire, ...] | SupersetWire | None) -> list[TopologyHint] | SupersetHints | None:
    if hints is None:
        return None
    if isinstance(hints, SupersetWire):
        return hints.to_hints()
    return _hints_of(hints)


def _to_wire(hints: ProvidedHints) -> tuple[HintWire, ...] | SupersetWire | None:
    if hints is None:
        return None
    if isinstance(hints, SupersetHints):
        return SupersetWire.from_hints(hints)
    return _wires_of(hints if isinstance(hints, list | tuple) else list(hints))


class AllocateRequest(MessageBase, frozen=True, kw_only=True):
    """Arbiter → provider: allocate for one container or the whole pod with the merged hint."""

    pod: Pod
    container: str | None = None
    hint: HintWire | None = None

    @property
    def pod_uid(self) -> str:
        return self.pod.uid


class Allocated(MessageBase, frozen=True, kw_only=True):
    """Provider → arbiter: the allocation succeeded (in memory; it is checkpointed on
    :class:`Commit`)."""

    provider: str
    pod_uid: str
    container: str | None = None
    placements: tuple[ContainerPlacement, ...] = ()
    pod: PodAssignment | None = None


class AllocationFailed(MessageBase, frozen=True, kw_only=True):
    """Provider → arbiter: the allocation failed; nothing was kept. ``reason``/``message`` are
    the kubelet's admission reason and text."""

    provider: str
    pod_uid: str
    container: str | None = None
    reason: str
    message: str


class Release(MessageBase, frozen=True, kw_only=True):
    """Arbiter → provider: give back what a pod (``container`` None) or a container holds."""

    pod_uid: str
    container: str | None = None


class Commit(MessageBase, frozen=True, kw_only=True):
    """Arbiter → provider: the pod's admission is decided; persist the state that holds it.

    Sent to every provider that allocated for the pod, right before ``Admitted``: the state
    files get one consistent write per decision, never a pod with only some containers."""

    pod_uid: str


# --- outcomes ----------------------------------------------------------------------------


class Admitted(MessageBase, frozen=True, kw_only=True):
    """The pod is admitted: the merged hint, the pod's bubble and every container's outcome
    (init containers first, in pod order)."""

    pod_uid: str
    name: str
    hint: HintWire | None = None
    pod: PodAssignment | None = None
    containers: tuple[ContainerAssignment, ...] = ()


class Rejected(MessageBase, frozen=True, kw_only=True):
    """The pod is rejected with the kubelet's reason (e.g. ``TopologyAffinityError``) and text;
    ``hint`` is the merged hint when the merge got that far (for ``explain``)."""

    pod_uid: str
    name: str
    reason: str
    message: str
    hint: HintWire | None = None


# --- cgroup writer -----------------------------------------------------------------------


class Apply(MessageBase, frozen=True, kw_only=True):
    """Arbiter → cgroup writer: pin a container's cgroup."""

    pod_uid: str
    container: str
    cgroup: str
    cpus: str
    mems: str
    cpu_quota: CPUQuota
    cpu_limit_millis: int | None = None
    pid: int | None = None


class Applied(MessageBase, frozen=True, kw_only=True):
    """Cgroup writer → arbiter: the container's cgroup is pinned."""

    pod_uid: str
    container: str
    cgroup: str


class ApplyFailed(MessageBase, frozen=True, kw_only=True):
    """Cgroup writer → arbiter: a write failed with ``errno`` on ``path``."""

    pod_uid: str
    container: str
    errno: int
    path: str
    message: str


Message: TypeAlias = (
    AdmitPod
    | RemoveContainer
    | RemovePod
    | ContainerCreated
    | DiscoverTopology
    | TopologyDiscovered
    | TopologyFailed
    | Reconcile
    | HintsRequest
    | Hints
    | AllocateRequest
    | Allocated
    | AllocationFailed
    | Release
    | Commit
    | Admitted
    | Rejected
    | Apply
    | Applied
    | ApplyFailed
)

MESSAGE_TYPES: tuple[type[MessageBase], ...] = Message.__args__
"""Every member of :data:`Message`, in declaration order."""

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
# The decoders are built on first use: building one resolves the annotations of every message
# class (milliseconds), which the OCI hook, importing this module on every container start,
# never needs.
_decoders: dict[str, Any] = {}


def _json_decoder() -> msgspec.json.Decoder[Message]:
    decoder: msgspec.json.Decoder[Message] | None = _decoders.get("json")
    if decoder is None:
        decoder = _decoders["json"] = msgspec.json.Decoder(Message)
    return decoder


def _msgpack_decoder() -> msgspec.msgpack.Decoder[Message]:
    decoder: msgspec.msgpack.Decoder[Message] | None = _decoders.get("msgpack")
    if decoder is None:
        decoder = _decoders["msgpack"] = msgspec.msgpack.Decoder(Message)
    return decoder


def encode_json(message: Message) -> bytes:
    return _json_encoder.encode(message)


def decode_json(data: bytes | str) -> Message:
    """Decode one message; raises ``msgspec.ValidationError`` / ``DecodeError`` with the path."""
    return _json_decoder().decode(data)


def encode_msgpack(message: Message) -> bytes:
    return _msgpack_encoder.encode(message)


def decode_msgpack(data: bytes) -> Message:
    return _msgpack_decoder().decode(data)


def message_type(message: MessageBase) -> str:
    """The ``type`` tag a message is encoded with."""
    tag = message.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
