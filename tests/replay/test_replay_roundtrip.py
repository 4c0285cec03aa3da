"""Record a run of stateful toy actors, replay it identically, and catch every kind of tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toy_actors import Sink, replay_toy_actors

from shim.actors.base import Envelope
from shim.cpuset import CPUSet
from shim.messages import (
    AdmitPod,
    Admitted,
    Applied,
    ApplyFailed,
    ContainerCreated,
    DiscoverTopology,
    Rejected,
    TopologyWire,
)
from shim.pod import Pod
from shim.runtime import Bus, Recorder, TraceError, TraceHeader, load_trace, parse_trace, replay, replay_file
from shim.topology.model import CPUInfo, CPUTopology, NUMANode, Topology


def eight_cpus() -> Topology:
    details = {cpu: CPUInfo(socket=0, core=cpu % 4, numa=0, uncore=0) for cpu in range(8)}
    cpus = CPUSet.range(0, 7)
    return Topology(
        cpu=CPUTopology.from_details(details),
        numa=(NUMANode(id=0, cpus=cpus, memory=16 << 30, hugepages={"2Mi": 0}, distances=(10,)),),
        allowed_cpus=cpus,
        allowed_mems=CPUSet.of([0]),
    )


HEADER = TraceHeader(config={"reservedSystemCPUs": "0"}, topology=TopologyWire.from_topology(eight_cpus()))


def pod(uid: str, *cpus: int) -> Pod:
    containers = [{"name": f"c{i}", "resources": {"limits": {"cpu": str(n)}}} for i, n in enumerate(cpus)]
    return Pod.from_dict({"metadata": {"name": f"pod-{uid}", "uid": uid}, "spec": {"containers": containers}})


def record(path: Path) -> Sink:
    """A run with queued and interleaved inputs, a rejection with rollback, pinning and a failed pin."""
    with path.open("w", encoding="utf-8") as sink_file:
        bus = Bus(replay_toy_actors(HEADER), tap=Recorder(HEADER, sink_file))
        bus.send(Envelope(to="topology", message=DiscoverTopology()))
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("a", 2, 1))))
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("b", 3))))
        bus.run_until_idle()
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("too-big", 5))))
        bus.run_until_idle()
        bus.send(Envelope(to="arbiter", message=ContainerCreated(pod_uid="a", container="c0", cgroup="/a/c0", pid=42)))
        bus.send(Envelope(to="arbiter", message=ContainerCreated(pod_uid="b", container="c0", cgroup="/fail")))
        bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("c", 1))))
        bus.run_until_idle()
        sink = bus.actor("sink")
    assert isinstance(sink, Sink)
    return sink


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    path = tmp_path / "run.trace"
    sink = record(path)
    # The recorded run did what the toys promise, so the trace is worth replaying.
    outcomes = [type(m).__name__ for m in sink.received]
    assert outcomes == ["Admitted", "Admitted", "Rejected", "Applied", "ApplyFailed", "Admitted"]
    a, b, rejected, applied, failed, c = sink.received
    assert isinstance(a, Admitted) and [x.cpus for x in a.containers] == ["1-2", "3"]
    assert isinstance(b, Admitted) and [x.cpus for x in b.containers] == ["4-6"]
    assert isinstance(rejected, Rejected) and rejected.reason == "UnexpectedAdmissionError"
    assert isinstance(applied, Applied) and applied.cgroup == "/a/c0"
    assert isinstance(failed, ApplyFailed) and (failed.errno, failed.path) == (28, "/fail/cpuset.cpus")
    assert isinstance(c, Admitted) and [x.cpus for x in c.containers] == ["7"]  # rollback freed nothing wrongly
    return path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def rewrite(path: Path, seq: int, change: dict[str, object], *, in_msg: bool = True) -> None:
    out = []
    for line in lines(path):
        record = json.loads(line)
        if record.get("seq") == seq:
            (record["msg"] if in_msg else record).update(change)
        out.append(json.dumps(record))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def first_seq(path: Path, msg_type: str, sender: str | None = None) -> int:
    for line in lines(path)[1:]:
        record = json.loads(line)
        if record["msg"]["type"] == msg_type and sender in (None, record["from"]):
            return int(record["seq"])
    raise AssertionError(f"no {msg_type} in trace")


def test_trace_format(trace_path: Path) -> None:
    header, *records = (json.loads(line) for line in lines(trace_path))
    assert header["podshim"] == HEADER.podshim
    assert header["config"] == {"reservedSystemCPUs": "0"}
    assert header["topology"]["allowed_cpus"] == "0-7"
    assert [list(r) for r in records[:1]] == [["seq", "from", "to", "msg"]]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0] == {"seq": 1, "from": "external", "to": "topology", "msg": {"type": "DiscoverTopology"}}
    assert records[1]["msg"]["type"] == "AdmitPod" and records[1]["from"] == "external"
    assert load_trace(trace_path).header == HEADER


def test_replay_is_identical(trace_path: Path) -> None:
    result = replay_file(trace_path, replay_toy_actors)
    assert result.ok, result.mismatch and result.mismatch.describe()
    assert result.delivered == len(lines(trace_path)) - 1


def test_replay_depends_on_the_header(trace_path: Path) -> None:
    trace = load_trace(trace_path)
    other = TraceHeader(config={"reservedSystemCPUs": "0-1"}, topology=trace.header.topology)
    result = replay(type(trace)(header=other, deliveries=trace.deliveries), replay_toy_actors)
    assert result.mismatch is not None
    # The first pod's CPUs are the first thing that depends on the reserved set.
    assert result.mismatch.seq == first_seq(trace_path, "Allocated", sender="cpu")


def test_tampered_internal_message_is_reported_at_its_seq(trace_path: Path) -> None:
    seq = first_seq(trace_path, "Admitted")
    original = load_trace(trace_path).deliveries[seq - 1]
    rewrite(trace_path, seq, {"name": "someone-else"})
    result = replay_file(trace_path, replay_toy_actors)
    mismatch = result.mismatch
    assert mismatch is not None
    assert mismatch.seq == seq
    assert mismatch.got == original
    assert mismatch.expected is not None and getattr(mismatch.expected.msg, "name", None) == "someone-else"
    assert result.delivered == seq - 1
    assert f"replay differs at seq {seq}" in mismatch.describe()
    assert '"name":"someone-else"' in mismatch.describe()


@pytest.mark.parametrize("field", ["from", "to"])
def test_tampered_routing_is_reported(trace_path: Path, field: str) -> None:
    seq = first_seq(trace_path, "Release")
    rewrite(trace_path, seq, {field: "sink"}, in_msg=False)
    mismatch = replay_file(trace_path, replay_toy_actors).mismatch
    assert mismatch is not None and mismatch.seq == seq


def test_tampered_external_input_shows_in_its_consequences(trace_path: Path) -> None:
    # Pod "b" asks for 4 CPUs instead of 3 in the trace: replay obeys the input, so the first
    # difference is the CPU provider's answer, not the input itself.
    seq = next(
        json.loads(line)["seq"]
        for line in lines(trace_path)[1:]
        if json.loads(line)["msg"].get("pod", {}).get("uid") == "b" and json.loads(line)["from"] == "external"
    )
    trace = json.loads(lines(trace_path)[seq])
    trace["msg"]["pod"]["containers"][0]["resources"]["requests"]["cpu"] = 4000
    trace["msg"]["pod"]["containers"][0]["resources"]["limits"]["cpu"] = 4000
    text = lines(trace_path)
    text[seq] = json.dumps(trace)
    trace_path.write_text("\n".join(text) + "\n", encoding="utf-8")
    mismatch = replay_file(trace_path, replay_toy_actors).mismatch
    assert mismatch is not None
    assert mismatch.seq > seq
    assert mismatch.expected is not None and mismatch.expected.sender != "external"


def test_truncated_trace_reports_the_extra_delivery(trace_path: Path) -> None:
    all_lines = lines(trace_path)
    trace_path.write_text("\n".join(all_lines[:-1]) + "\n", encoding="utf-8")
    mismatch = replay_file(trace_path, replay_toy_actors).mismatch
    assert mismatch is not None
    assert mismatch.seq == len(all_lines) - 1
    assert mismatch.expected is None
    assert mismatch.got is not None and json.loads(all_lines[-1])["msg"]["type"] == type(mismatch.got.msg).__name__
    assert "(nothing)" in mismatch.describe()


def test_trace_longer_than_the_run_is_reported(trace_path: Path) -> None:
    last = json.loads(lines(trace_path)[-1])
    last["seq"] += 1
    with trace_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(last) + "\n")
    mismatch = replay_file(trace_path, replay_toy_actors).mismatch
    assert mismatch is not None
    assert (mismatch.seq, mismatch.got) == (last["seq"], None)


def test_unreadable_trace_lines_are_named() -> None:
    header = json.dumps({"podshim": "0.1.0", "config": None, "topology": None})
    good = json.dumps({"seq": 1, "from": "external", "to": "topology", "msg": {"type": "DiscoverTopology"}})
    with pytest.raises(TraceError, match="trace line 3: invalid delivery"):
        parse_trace("\n".join([header, good, '{"seq": 2, "from": "x", "to": "y", "msg": {"type": "Nope"}}']))
    with pytest.raises(TraceError, match="trace line 1: invalid header"):
        parse_trace("not json\n")
    with pytest.raises(TraceError, match="no header"):
        parse_trace("\n\n")
    assert len(parse_trace(f"{header}\n\n{good}\n").deliveries) == 1
