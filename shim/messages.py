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
  :class:`AllocateRequest`, :class:`Allocated`, :class:`AllocationFailed`, :class:`Release`;
- admission outcomes: :class:`Admitted`, :class:`Rejected`;
- cgroup writer: :class:`Apply`, :class:`Applied`, :class:`ApplyFailed`.

This module must stay importable without trio (the OCI hook imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, TypeAlias

import msgspec

from shim.cpuset import CPUSet
from shim.pod import ContainerKind, Pod
from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints

Isolation = Literal["container", "pod", "host"]
CPUQuota = Literal["unlimited", "limited"]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the untagged value types nested inside messages."""


class MessageBase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag=True, tag_field="type"):
    """Base of every message: the ``type`` tag is the class name."""


# --- wire forms of domain values ---------------------------------------------------------


class HintWire(_Wire, frozen=True, kw_only=True):
    """A TopologyHint on the wire: ``numa`` None = no preference, ``[]`` = an empty mask."""

    numa: tuple[int, ...] | None
    preferred: bool

    @classmethod
    def from_hint(cls, hint: TopologyHint) -> HintWire:
        return cls(numa=None if hint.affinity is None else tuple(hint.affinity.bits()), preferred=hint.preferred)

    def to_hint(self) -> TopologyHint:
        return TopologyHint(None if self.numa is None else Bitmask.from_bits(self.numa), self.preferred)


def hint_to_wire(hint: TopologyHint | None) -> HintWire | None:
    """The wire form of an optional hint (None stays None: the provider got no hint)."""
    return None if hint is None else HintWire.from_hint(hint)


def hint_from_wire(hint: HintWire | None) -> TopologyHint | None:
    return None if hint is None else hint.to_hint()


def _ids(value: int) -> tuple[int, ...]:
    return tuple(Bitmask(value).bits())


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
        universe = Bitmask.from_bits(self.universe).value
        minimal = [Bitmask.from_bits(ids).value for ids in self.minimal]
        if _by_width(set(minimal)) != minimal:
            raise ValueError("minimal masks must be distinct and ordered by node count, then value")
        if any(value & ~universe for value in minimal):
            raise ValueError("a minimal mask has nodes outside the universe")
        hints = SupersetHints.__new__(SupersetHints)
        hints.minimal = tuple(minimal)
        hints.universe = universe
        hints.preferred = frozenset(Bitmask.from_bits(ids).value for ids in self.preferred)
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
    return [hint.to_hint() for hint in hints]


def _to_wire(hints: ProvidedHints) -> tuple[HintWire, ...] | SupersetWire | None:
    if hints is None:
        return None
    if isinstance(hints, SupersetHints):
        return SupersetWire.from_hints(hints)
    return tuple(HintWire.from_hint(hint) for hint in hints)


class AllocateRequest(MessageBase, frozen=True, kw_only=True):
    """Arbiter → provider: allocate for one container or the whole pod with the merged hint."""

    pod: Pod
    container: str | None = None
    hint: HintWire | None = None

    @property
    def pod_uid(self) -> str:
        return self.pod.uid


class Allocated(MessageBase, frozen=True, kw_only=True):
    """Provider → arbiter: the allocation succeeded (and is checkpointed)."""

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
    | Admitted
    | Rejected
    | Apply
    | Applied
    | ApplyFailed
)

MESSAGE_TYPES: tuple[type[MessageBase], ...] = Message.__args__
"""Every member of :data:`Message`, in declaration order."""

_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[Message] = msgspec.json.Decoder(Message)
_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode_json(message: Message) -> bytes:
    return _json_encoder.encode(message)


def decode_json(data: bytes | str) -> Message:
    """Decode one message; raises ``msgspec.ValidationError`` / ``DecodeError`` with the path."""
    return _json_decoder.decode(data)


def encode_msgpack(message: Message) -> bytes:
    return _msgpack_encoder.encode(message)


def decode_msgpack(data: bytes) -> Message:
    return _msgpack_decoder.decode(data)


def message_type(message: MessageBase) -> str:
    """The ``type`` tag a message is encoded with."""
    tag = message.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
