"""The message layer: lossless JSON/msgpack round trips, stable tags, hint and topology wire forms."""

from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import pytest
from hypothesis import given
from message_strategies import BY_TYPE, messages, superset_hints, topologies

from shim import messages as m
from shim.pod import Pod
from shim.topology.model import Topology
from shim.topology_manager import Bitmask, SupersetHints, TopologyHint

# The tags are a wire contract (traces, the daemon socket): renaming a class must not change them silently.
EXPECTED_TAGS = [
    "AdmitPod",
    "RemoveContainer",
    "RemovePod",
    "ContainerCreated",
    "DiscoverTopology",
    "TopologyDiscovered",
    "TopologyFailed",
    "Reconcile",
    "HintsRequest",
    "Hints",
    "AllocateRequest",
    "Allocated",
    "AllocationFailed",
    "Release",
    "Commit",
    "Admitted",
    "Rejected",
    "Apply",
    "Applied",
    "ApplyFailed",
]


def test_tags_are_stable_and_unique() -> None:
    assert [cls.__struct_config__.tag for cls in m.MESSAGE_TYPES] == EXPECTED_TAGS
    assert all(cls.__struct_config__.tag_field == "type" for cls in m.MESSAGE_TYPES)


def test_every_message_type_has_a_strategy() -> None:
    assert set(BY_TYPE) == set(m.MESSAGE_TYPES)


@given(messages)
def test_json_round_trip(message: m.Message) -> None:
    data = m.encode_json(message)
    assert json.loads(data)["type"] == m.message_type(message)
    decoded = m.decode_json(data)
    assert decoded == message
    assert type(decoded) is type(message)
    assert m.encode_json(decoded) == data


@given(messages)
def test_msgpack_round_trip(message: m.Message) -> None:
    data = m.encode_msgpack(message)
    decoded = m.decode_msgpack(data)
    assert decoded == message
    assert type(decoded) is type(message)


@given(messages)
def test_messages_are_frozen(message: m.Message) -> None:
    field = message.__struct_fields__[0] if message.__struct_fields__ else None
    if field is None:
        return
    with pytest.raises(AttributeError):
        setattr(message, field, None)


def test_hints_keep_none_apart_from_empty_list() -> None:
    message = m.Hints(
        provider="cpu",
        pod_uid="p",
        hints={"cpu": None, "memory": (), "hugepages-2Mi": (m.HintWire(numa=(), preferred=False),)},
    )
    text = m.encode_json(message)
    assert json.loads(text)["hints"] == {
        "cpu": None,
        "memory": [],
        "hugepages-2Mi": [{"numa": [], "preferred": False}],
    }
    for decoded in (m.decode_json(text), m.decode_msgpack(m.encode_msgpack(message))):
        assert isinstance(decoded, m.Hints)
        assert decoded.to_provider_hints() == {
            "cpu": None,
            "memory": [],
            "hugepages-2Mi": [TopologyHint(Bitmask(0), False)],
        }
    no_hints = m.decode_json(m.encode_json(m.Hints(provider="devices", pod_uid="p")))
    assert isinstance(no_hints, m.Hints)
    assert no_hints.to_provider_hints() is None


def test_hints_wire_from_provider_result() -> None:
    provided: dict[str, list[TopologyHint] | None] = {
        "cpu": [TopologyHint(Bitmask.of(0), True), TopologyHint(Bitmask.of(0, 1), False)],
        "memory": None,
    }
    wire = m.Hints.wire(provided)
    assert wire == {
        "cpu": (m.HintWire(numa=(0,), preferred=True), m.HintWire(numa=(0, 1), preferred=False)),
        "memory": None,
    }
    assert m.Hints(provider="cpu", pod_uid="p", hints=wire).to_provider_hints() == provided
    assert m.Hints.wire(None) is None


def _same(left: SupersetHints, right: SupersetHints) -> bool:
    return (left.minimal, left.universe, left.preferred) == (right.minimal, right.universe, right.preferred)


@given(superset_hints())
def test_superset_wire_is_lossless(hints: SupersetHints) -> None:
    wire = m.SupersetWire.from_hints(hints)
    message = m.Hints(provider="cpu", pod_uid="p", hints={"cpu": wire, "memory": ()})
    for decoded in (m.decode_json(m.encode_json(message)), m.decode_msgpack(m.encode_msgpack(message))):
        assert isinstance(decoded, m.Hints)
        assert decoded == message
        provided = decoded.to_provider_hints()
        assert provided is not None
        found = provided["cpu"]
        assert isinstance(found, SupersetHints)
        assert _same(found, hints)
        assert found.expand() == hints.expand()
        assert m.Hints.wire(provided) == message.hints


def test_superset_wire_json_shape_and_provider_round_trip() -> None:
    family = SupersetHints.from_min_size([Bitmask.of(0), Bitmask.of(1, 2)], Bitmask.of(0, 1, 2, 3), 1)
    provided = {"cpu": family, "memory": [TopologyHint(Bitmask.of(1), True)], "hugepages-2Mi": None}
    wire = m.Hints.wire(provided)
    text = m.encode_json(m.Hints(provider="cpu", pod_uid="p", hints=wire))
    assert json.loads(text)["hints"] == {
        "cpu": {"minimal": [[0], [1, 2]], "universe": [0, 1, 2, 3], "preferred": [[0]]},
        "memory": [{"numa": [1], "preferred": True}],
        "hugepages-2Mi": None,
    }
    decoded = m.decode_json(text)
    assert isinstance(decoded, m.Hints)
    back = decoded.to_provider_hints()
    assert back is not None
    assert back["memory"] == provided["memory"]
    assert back["hugepages-2Mi"] is None
    cpu = back["cpu"]
    assert isinstance(cpu, SupersetHints)
    assert _same(cpu, family)
    assert [h.numa_ids() for h in cpu.expand() if h.preferred] == [[0]]


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (m.SupersetWire(minimal=((0, 2),), universe=(0, 1)), "outside the universe"),
        (m.SupersetWire(minimal=((1, 2), (0,)), universe=(0, 1, 2)), "ordered"),
        (m.SupersetWire(minimal=((0,), (0,)), universe=(0, 1)), "distinct"),
        (m.SupersetWire(minimal=((0, 1),), universe=(0, 1, 2), preferred=((1, 2),)), "not a member"),
        (m.SupersetWire(minimal=((64,),), universe=(64,)), "less than 64"),
    ],
)
def test_superset_wire_rejects_inconsistent_sets(wire: m.SupersetWire, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        wire.to_hints()


@pytest.mark.parametrize(
    "hint",
    [
        TopologyHint(None, True),
        TopologyHint(None, False),
        TopologyHint(Bitmask(0), False),
        TopologyHint(Bitmask.of(1, 3), True),
    ],
)
def test_hint_wire_round_trip(hint: TopologyHint) -> None:
    wire = m.hint_to_wire(hint)
    assert wire is not None
    assert m.hint_from_wire(wire) == hint
    assert json.loads(msgspec.json.encode(wire)) == {"numa": hint.numa_ids(), "preferred": hint.preferred}
    assert m.hint_to_wire(None) is None
    assert m.hint_from_wire(None) is None


@given(topologies())
def test_topology_wire_is_lossless(topology: Topology) -> None:
    wire = m.TopologyWire.from_topology(topology)
    assert wire.to_topology() == topology
    decoded = m.decode_json(m.encode_json(m.TopologyDiscovered(topology=wire)))
    assert isinstance(decoded, m.TopologyDiscovered)
    assert decoded.topology.to_topology() == topology


def test_topology_wire_uses_the_topology_file_field_names() -> None:
    wire = m.TopologyWire(
        num_cpus=2,
        num_cores=1,
        num_sockets=1,
        num_numa_nodes=1,
        num_uncore_caches=1,
        cpus=(m.CPUWire(id=0, socket=0, core=0, numa=0, uncore=0), m.CPUWire(id=1, socket=0, core=0, numa=0, uncore=0)),
        numa=(m.NUMAWire(id=0, cpus="0-1", memory=1 << 30, hugepages={"2Mi": 0}, distances=(10,)),),
        allowed_cpus="0-1",
        allowed_mems="0",
    )
    data = json.loads(msgspec.json.encode(wire))
    assert data["cpus"][1] == {"id": 1, "socket": 0, "core": 0, "numa": 0, "uncore": 0}
    assert data["numa"][0] == {"id": 0, "cpus": "0-1", "memory": 1 << 30, "hugepages": {"2Mi": 0}, "distances": [10]}


def test_admit_pod_carries_the_parsed_pod() -> None:
    pod = Pod.from_dict(
        {
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {
                "resources": {"limits": {"cpu": "4", "memory": "2Gi"}},
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}],
            },
        }
    )
    decoded = m.decode_msgpack(m.encode_msgpack(m.AdmitPod(pod=pod)))
    assert isinstance(decoded, m.AdmitPod)
    assert decoded.pod == pod
    assert decoded.pod.container("proxy").is_sidecar
    assert decoded.pod.container("app").integral_cpus() == 2
    request = m.HintsRequest(pod=pod)
    assert request.pod_uid == "u1"
    assert request.container is None


def test_admitted_json_shape() -> None:
    admitted = m.Admitted(
        pod_uid="u",
        name="web",
        hint=m.HintWire(numa=(0,), preferred=True),
        pod=m.PodAssignment(cpus="1-5", memory=m.MemoryAssignment(numa=(0,), size=4096)),
        containers=(
            m.ContainerAssignment(
                name="app", kind="app", cpus="1-3", mems="0", isolation="container", cpu_quota="unlimited"
            ),
            m.ContainerAssignment(
                name="log",
                kind="sidecar",
                cpus="4-5",
                mems="0",
                isolation="pod",
                cpu_quota="limited",
                cpu_limit_millis=500,
            ),
        ),
    )
    data = json.loads(m.encode_json(admitted))
    assert data["pod"] == {"cpus": "1-5", "memory": {"numa": [0], "bytes": 4096}}
    assert data["hint"] == {"numa": [0], "preferred": True}
    assert data["containers"][1] == {
        "name": "log",
        "kind": "sidecar",
        "cpus": "4-5",
        "mems": "0",
        "isolation": "pod",
        "cpu_quota": "limited",
        "cpu_limit_millis": 500,
    }


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"type": "Explode"}', "Invalid value 'Explode'"),
        (b'{"type": "RemovePod"}', "missing required field `pod_uid`"),
        (b'{"type": "RemovePod", "pod_uid": "u", "extra": 1}', "unknown field `extra`"),
        (
            b'{"type": "Apply", "pod_uid": "u", "container": "c", "cgroup": "/x", "cpus": "0", "mems": "0",'
            b' "cpu_quota": "sometimes"}',
            "`$.cpu_quota`",
        ),
        (b'{"pod_uid": "u"}', "missing required field `type`"),
    ],
)
def test_decoding_rejects_bad_messages(data: bytes, problem: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=problem.replace("$", r"\$").replace(".", r"\.")):
        m.decode_json(data)


def test_message_layer_does_not_import_trio() -> None:
    code = (
        "import sys, shim.messages, shim.actors.base, shim.actors.stores, shim.actors.cgroup_writer, "
        "shim.actors.topology, shim.runtime; assert 'trio' not in sys.modules, 'trio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
