"""The daemon protocol: framing (sans-IO), size limits, malformed payloads, JSON and msgpack."""

from __future__ import annotations

import json
import struct

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.frontends.protocol import (
    BAD_FRAME,
    BAD_REQUEST,
    MAX_FRAME,
    TOO_LARGE,
    Admit,
    Error,
    Frame,
    FrameDecoder,
    Health,
    HookEvent,
    Ok,
    ProtocolError,
    Remove,
    State,
    decode_request,
    decode_response,
    encode_frame,
    pod_result,
)
from shim.messages import Admitted, ContainerAssignment, HintWire, MemoryAssignment, PodAssignment, Rejected
from shim.pod import Container, Pod, Resources

POD = Pod(uid="u1", name="p", containers=(Container(name="c", kind="app",
                                                    resources=Resources(requests={"cpu": 2000})),))
REQUESTS = [
    Health(),
    State(),
    Remove(pod_uid="u1"),
    Remove(pod_uid="u1", container="c"),
    HookEvent(stage="createRuntime", state={"id": "abc", "pid": 7}, pod_uid="u1", container="c", cgroup="/x", pid=7),
    Admit.of([POD]),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("form", ["msgpack", "json", "json-line"])
def test_round_trip_in_every_form(request_: object, form: str) -> None:
    data = encode_frame(request_, form)  # type: ignore[arg-type]
    frames = FrameDecoder().feed(data)
    assert [f.form for f in frames] == [form]
    assert decode_request(frames[0]) == request_


def test_length_prefix_is_big_endian() -> None:
    data = encode_frame(Health())
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    assert msgspec.msgpack.decode(data[4:]) == {"type": "Health"}


def test_json_payload_is_accepted_inside_a_length_prefixed_frame() -> None:
    payload = json.dumps({"type": "Remove", "pod_uid": "u", "container": None}).encode()
    frames = FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
    assert frames == [Frame(payload, "json")]
    assert decode_request(frames[0]) == Remove(pod_uid="u")


def test_bare_json_lines_for_tiny_clients() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(b'{"type": "Health"}\r\n{"type": "State"}\n{"type"')
    assert [decode_request(f) for f in frames] == [Health(), State()]
    assert decoder.pending == len(b'{"type"')
    assert [decode_request(f) for f in decoder.feed(b': "Health"}\n')] == [Health()]


@given(st.lists(st.sampled_from(REQUESTS), max_size=6), st.data())
def test_any_split_of_the_byte_stream_gives_the_same_frames(requests: list[object], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(r, data.draw(st.sampled_from(["msgpack", "json", "json-line"])))  # type: ignore[arg-type]
                      for r in requests)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    frames = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += decoder.feed(stream[start:end])
    decoder.close()
    assert [decode_request(f) for f in frames] == requests


def test_oversized_length_is_refused_before_the_payload_arrives() -> None:
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(struct.pack(">I", 101))
    assert info.value.code == TOO_LARGE and info.value.fatal
    assert "101 bytes is over the 100-byte limit" in info.value.message
    with pytest.raises(ProtocolError, match="already broken"):
        decoder.feed(encode_frame(Health()))


def test_default_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME == 1 << 20
    FrameDecoder().feed(struct.pack(">I", MAX_FRAME))  # exactly the limit: waits for the payload
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))


def test_oversized_json_line_without_newline() -> None:
    decoder = FrameDecoder(max_size=16)
    assert decoder.feed(b"{" + b" " * 15) == []
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b" ")
    assert info.value.code == TOO_LARGE


def test_truncated_frame_at_close() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(Health())[:-1])
    with pytest.raises(ProtocolError) as info:
        decoder.close()
    assert info.value.code == BAD_FRAME
    FrameDecoder().close()  # nothing pending: a clean close


@pytest.mark.parametrize(
    ("payload", "code", "fatal"),
    [
        (b"\xc1", BAD_FRAME, True),  # 0xc1 is never valid msgpack
        (b"", BAD_FRAME, True),
        (b'{"type": "Health"', BAD_FRAME, True),
        (msgspec.msgpack.encode({"type": "Launch"}), BAD_REQUEST, False),
        (msgspec.msgpack.encode({"type": "Remove"}), BAD_REQUEST, False),
        (msgspec.msgpack.encode({"type": "Remove", "pod_uid": 3}), BAD_REQUEST, False),
        (msgspec.msgpack.encode({"type": "Health", "extra": 1}), BAD_REQUEST, False),
        (msgspec.msgpack.encode([1, 2]), BAD_REQUEST, False),
        (b'{"type": "Launch"}', BAD_REQUEST, False),
    ],
)
def test_malformed_and_invalid_payloads(payload: bytes, code: str, fatal: bool) -> None:
    frames = FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(ProtocolError) as info:
        decode_request(frames[0])
    assert (info.value.code, info.value.fatal) == (code, fatal)


def test_responses_round_trip() -> None:
    for response in (Ok(result={"pods": [1, "x"]}), Ok(), Error(code="forbidden", message="uid 5 is not allowed")):
        for form in ("msgpack", "json", "json-line"):
            (frame,) = FrameDecoder().feed(encode_frame(response, form))  # type: ignore[arg-type]
            assert decode_response(frame) == response


def test_admit_accepts_kubernetes_mappings_and_pods() -> None:
    manifest = {
        "metadata": {"name": "web", "uid": "u2"},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]},
    }
    pods = Admit.of([POD, manifest]).to_pods()
    assert pods[0] == POD
    # API defaults applied: requests copied from limits
    assert pods[1].uid == "u2" and pods[1].containers[0].request("cpu") == 2000
    assert pods[1].containers[0].request("memory") == 1 << 30


def test_admit_with_a_bad_pod_names_the_entry() -> None:
    bad = Admit(pods=({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "resources": {
        "limits": {"cpu": "two"}}}]}},))
    with pytest.raises(ProtocolError) as info:
        bad.to_pods()
    assert info.value.code == BAD_REQUEST and info.value.message.startswith("pods[0]")
    with pytest.raises(ProtocolError, match=r"pods\[0\]"):
        Admit(pods=({"uid": 5},)).to_pods()


def test_pod_result_shapes() -> None:
    admitted = Admitted(
        pod_uid="u", name="n", hint=HintWire(numa=(0, 1), preferred=False),
        pod=PodAssignment(cpus="2-5", memory=MemoryAssignment(numa=(0,), size=1024)),
        containers=(ContainerAssignment(name="c", kind="app", cpus="2-3", mems="0", isolation="container",
                                        cpu_quota="unlimited"),),
    )
    assert pod_result(admitted) == {
        "uid": "u", "name": "n", "admitted": True, "reason": "", "message": "",
        "hint": {"numa": [0, 1], "preferred": False},
        "pod": {"cpus": "2-5", "memory": {"numa": [0], "bytes": 1024}},
        "containers": [{"name": "c", "kind": "app", "cpus": "2-3", "mems": "0", "isolation": "container",
                        "cpu_quota": "unlimited"}],
    }
    rejected = Rejected(pod_uid="u", name="n", reason="TopologyAffinityError", message="Resources cannot be allocated")
    result = pod_result(rejected)
    assert result["admitted"] is False and result["reason"] == "TopologyAffinityError"
    assert result["hint"] is None and result["containers"] == []
