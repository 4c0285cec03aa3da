"""The machine as the Memory manager sees it: memory and huge pages per NUMA node, the
``reservedMemory`` configuration, and the machine state built from them (spec §1-§2).

Also the two primitive walks over a machine state that every allocation and release uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from shim.memory.errors import ReservedMemoryError, StateValidationError
from shim.memory.state import MEMORY, Block, MachineState, MemoryTable, NUMANodeState
from shim.quantity import QuantityError, exact_quantity, format_bytes

if TYPE_CHECKING:
    from shim.topology.model import Topology

HUGEPAGES_PREFIX = "hugepages-"
SystemReserved = dict[int, dict[str, int]]


def is_memory_resource(name: str) -> bool:
    return name == MEMORY or name.startswith(HUGEPAGES_PREFIX)


def hugepage_resource_name(page_size_bytes: int) -> str:
    """``hugepages-<page size as a binary quantity>``: 2 MiB pages → ``hugepages-2Mi``."""
    return HUGEPAGES_PREFIX + format_quantity(page_size_bytes, "BinarySI")


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class NodeMemory(msgspec.Struct, frozen=True):
    """One NUMA node's memory in bytes, and its huge pages: resource name → total bytes."""

    id: int
    memory: int
    hugepages: dict[str, int] = msgspec.field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, self.memory))  # the huge pages are left out, as the dataclass did


def nodes_from_topology(topology: Topology) -> list[NodeMemory]:
    """The Memory manager's view of a discovered topology (``NUMANode.hugepages`` maps "2Mi" → bytes)."""
    return [
        NodeMemory(
            id=node.id,
            memory=node.memory,
            hugepages={HUGEPAGES_PREFIX + size: total for size, total in node.hugepages.items()},
        )
        for node in topology.numa
    ]


def default_machine_state(
    nodes: Iterable[NodeMemory], system_reserved: Mapping[int, Mapping[str, int]]
) -> MachineState:
    """The fresh machine state: huge pages first, then memory minus what the huge pages hold."""
    machine: MachineState = {}
    for node in nodes:
        reserved = system_reserved.get(node.id, {})
        memory_map: dict[str, MemoryTable] = {}
        hugepages_total = 0
        for name, total in node.hugepages.items():
            held = reserved.get(name, 0)
            memory_map[name] = MemoryTable(total, held, total - held, 0, total - held)
            hugepages_total += total
        held = reserved.get(MEMORY, 0)
        allocatable = node.memory - held - hugepages_total
        memory_map[MEMORY] = MemoryTable(node.memory, held, allocatable, 0, allocatable)
        machine[node.id] = NUMANodeState(number_of_assignments=0, memory_map=memory_map, cells=[node.id])
    return machine


def reserve(machine: MachineState, bits: Sequence[int], resource: str, amount: int) -> None:
    """Take ``amount`` of ``resource`` from the nodes of ``bits``, first node first.

    Every node of the mask counts the assignment and joins the group even when nothing is
    taken from it: the group, not the node, is the unit of multi-NUMA allocations."""
    for node_id in bits:
        node = machine[node_id]
        node.number_of_assignments += 1
        node.cells = list(bits)
        if amount == 0:
            continue
        table = node.memory_map.get(resource)
        if table is None or table.free <= 0:
            continue
        taken = min(table.free, amount)
        table.reserved += taken
        table.free -= taken
        amount -= taken


def release(machine: MachineState, block: Block) -> None:
    """Give a block back: uncount it on every node of its mask and free its size from the
    nodes that still hold reserved memory, first node first (not necessarily where it was taken)."""
    amount = block.size
    for node_id in block.numa_affinity or ():
        node = machine[node_id]
        node.number_of_assignments -= 1
        if node.number_of_assignments == 0:
            node.cells = [node_id]
        if amount == 0:
            continue
        table = node.memory_map.get(block.type)
        if table is None or table.reserved == 0:
            continue
        given = min(table.reserved, amount)
        table.free += given
        table.reserved -= given
        amount -= given


# reservedMemory configuration (memory_manager.go) -----------------------------------------------


def _quantity_format(text: Any) -> str:
    if isinstance(text, str):
        stripped = text.strip()
        if stripped[-2:] in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
            return "BinarySI"
        if "e" in stripped.lower():
            return "DecimalExponent"
    return "DecimalSI"


def _quantity_bytes(text: Any) -> int:
    try:
        numerator, denominator = exact_quantity(text)
    except QuantityError as err:
        raise ReservedMemoryError(str(err)) from None
    if numerator % denominator:
        raise ReservedMemoryError("could not covert a variable of type Quantity to int64")
    return numerator // denominator


def format_quantity(amount: int, fmt: str) -> str:
    """Go's canonical ``Quantity.String()`` for a whole number in the given format."""
    if fmt == "BinarySI" and abs(amount) >= 1024:
        return format_bytes(amount) if amount > 0 else "-" + format_bytes(-amount)
    mantissa, exponent = amount, 0
    while mantissa and mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if exponent == 0:
        return str(mantissa)
    if fmt == "DecimalExponent":
        return f"{mantissa}e{exponent}"
    return f"{mantissa}{'kMGTPE'[exponent // 3 - 1]}"


def validate_reserved_memory(
    numa_ids: Iterable[int],
    node_allocatable_reservation: Mapping[str, Any],
    reserved_memory: Sequence[Mapping[str, Any]],
) -> None:
    """The kubelet's reservedMemory checks: known NUMA nodes, and per memory type the sum over
    nodes equal to what Node Allocatable reserves. Quantities are strings (or numbers)."""
    known = set(numa_ids)
    totals: dict[str, int] = {}
    formats: dict[str, str] = {}
    for reservation in reserved_memory:
        numa = int(reservation["numaNode"])
        if numa not in known:
            raise ReservedMemoryError(
                f"the reserved memory configuration references a NUMA node {numa} that does not exist on this machine"
            )
        for name, text in (reservation.get("limits") or {}).items():
            amount = _quantity_bytes(text)
            # Go's Quantity.Add keeps the receiver's format unless the receiver is zero.
            if amount != 0 or name not in formats:
                formats[name] = _quantity_format(text)
            totals[name] = totals.get(name, 0) + amount
    types = set(totals) | {name for name in node_allocatable_reservation if is_memory_resource(name)}
    for name in sorted(types):
        allocatable_text = node_allocatable_reservation.get(name)
        allocatable = 0 if allocatable_text is None else _quantity_bytes(allocatable_text)
        reserved = totals.get(name, 0)
        if allocatable != reserved:
            shown_reserved = format_quantity(reserved, formats.get(name, "DecimalSI") if reserved else "DecimalSI")
            shown_allocatable = format_quantity(
                allocatable, _quantity_format(allocatable_text) if allocatable else "DecimalSI"
            )
            raise ReservedMemoryError(
                f'the total amount "{shown_reserved}" of type "{name}" is not equal to the value '
                f'"{shown_allocatable}" determined by Node Allocatable feature'
            )


def convert_reserved_memory(numa_ids: Iterable[int], reserved_memory: Sequence[Mapping[str, Any]]) -> SystemReserved:
    """reservedMemory as ``{numa id: {resource: bytes}}``, with an entry for every node
    (a later reservation of the same node and resource replaces the earlier one, as in the kubelet)."""
    converted: SystemReserved = {numa: {} for numa in numa_ids}
    for reservation in reserved_memory:
        node = converted.setdefault(int(reservation["numaNode"]), {})
        for name, text in (reservation.get("limits") or {}).items():
            node[name] = _quantity_bytes(text)
    return converted


def system_reserved_memory(
    numa_ids: Iterable[int],
    node_allocatable_reservation: Mapping[str, Any],
    reserved_memory: Sequence[Mapping[str, Any]],
) -> SystemReserved:
    """Validate then convert the reservedMemory configuration (the kubelet's getSystemReservedMemory)."""
    ids = list(numa_ids)
    validate_reserved_memory(ids, node_allocatable_reservation, reserved_memory)
    return convert_reserved_memory(ids, reserved_memory)


# start-up validation (policy_static.go validateState) -------------------------------------------


def replay(machine: MachineState, blocks: Iterable[Block], pod_uid: str, container: str) -> None:
    """``reserve`` for a restored block, refusing blocks on unknown NUMA nodes or resources."""
    where = f"[memorymanager] (pod: {pod_uid}, container: {container}) the memory assignment uses"
    for block in blocks:
        amount = block.size
        bits = block.numa_affinity or []
        for node_id in bits:
            node = machine.get(node_id)
            if node is None:
                raise StateValidationError(f"{where} the NUMA that does not exist")
            node.number_of_assignments += 1
            node.cells = list(bits)
            table = node.memory_map.get(block.type)
            if table is None:
                raise StateValidationError(f"{where} memory resource that does not exist")
            if amount == 0 or table.free <= 0:
                continue
            taken = min(table.free, amount)
            table.reserved += taken
            table.free -= taken
            amount -= taken


def machine_states_equal(restored: MachineState, expected: MachineState) -> bool:
    """The kubelet's comparison: same nodes, counts, groups and sizes; free and reserved are
    compared summed over each node's group, because their split inside a group is not stable."""
    if restored.keys() != expected.keys():
        return False
    for node_id, mine in restored.items():
        theirs = expected[node_id]
        if mine.number_of_assignments != theirs.number_of_assignments:
            return False
        if sorted(mine.cells or []) != sorted(theirs.cells or []):
            return False
        if mine.memory_map.keys() != theirs.memory_map.keys():
            return False
        for name, table in mine.memory_map.items():
            other = theirs.memory_map[name]
            if (table.total, table.system_reserved, table.allocatable) != (
                other.total,
                other.system_reserved,
                other.allocatable,
            ):
                return False
            sums = [0, 0, 0, 0]
            for cell in mine.cells or []:
                left = restored.get(cell)
                right = expected.get(cell)
                if left is None or right is None or name not in left.memory_map or name not in right.memory_map:
                    return False
                sums[0] += left.memory_map[name].free
                sums[1] += left.memory_map[name].reserved
                sums[2] += right.memory_map[name].free
                sums[3] += right.memory_map[name].reserved
            if sums[0] != sums[2] or sums[1] != sums[3]:
                return False
    return True
