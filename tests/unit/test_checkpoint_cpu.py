"""CPU manager checkpoint: round trips in every format, kubelet error texts, corrupt files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.checkpoint.fnv import fnv1a_32_text
from shim.cpu import checkpoint
from shim.cpu.checkpoint import CheckpointError, decode, encode
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet

names = st.text(min_size=0, max_size=8)
cpusets = st.sets(st.integers(min_value=0, max_value=260), max_size=12).map(CPUSet.of)
states = st.builds(
    CPUState,
    default_cpuset=cpusets,
    assignments=st.dictionaries(names, st.dictionaries(names, cpusets, max_size=3), max_size=4),
    pod_entries=st.dictionaries(names, cpusets, max_size=3),
)
policies = st.sampled_from(["static", "none", "<&>"])


def _without_pod_entries(state: CPUState) -> CPUState:
    return CPUState(state.default_cpuset, state.assignments, {})


@pytest.mark.parametrize("fmt", ["v4", "v3"])
@given(state=states, policy=policies)
def test_roundtrip_with_pod_entries(fmt: str, state: CPUState, policy: str) -> None:
    text = encode(state, policy, format=fmt)
    assert decode(text, policy) == state
    assert encode(decode(text, policy), policy, format=fmt) == text


@pytest.mark.parametrize("fmt", ["v4", "v3", "v2"])
@given(state=states, policy=policies)
def test_roundtrip_gate_off_drops_pod_entries(fmt: str, state: CPUState, policy: str) -> None:
    text = encode(state, policy, format=fmt, pod_level_gate=False)
    assert "podEntries" not in json.loads(text)
    assert decode(text, policy, pod_level_gate=False) == _without_pod_entries(state)
    assert decode(text, policy, pod_level_gate=True) == _without_pod_entries(state)


@given(state=states)
def test_v2_never_carries_pod_entries(state: CPUState) -> None:
    assert decode(encode(state, "static", format="v2"), "static") == _without_pod_entries(state)


@given(state=states, cut=st.integers(min_value=0))
def test_truncated_file_is_an_error(state: CPUState, cut: int) -> None:
    text = encode(state, "static")
    with pytest.raises(CheckpointError):
        decode(text[: cut % len(text)], "static")


def test_every_prefix_of_a_small_file_is_rejected() -> None:
    state = CPUState(CPUSet.parse("0,3-7"), {"p": {"c": CPUSet.parse("1-2")}}, {"p": CPUSet.parse("1-2")})
    for fmt in ("v4", "v3", "v2"):
        text = encode(state, "static", format=fmt)
        for cut in range(len(text)):
            with pytest.raises(CheckpointError):
                decode(text[:cut], "static")


def test_spec_example_layout() -> None:
    state = CPUState(
        CPUSet.parse("0,3-11"), {"u1": {"a": CPUSet.parse("1"), "b": CPUSet.parse("2")}}, {"u1": CPUSet.parse("1-2")}
    )
    data = (
        '{"policyName":"static","defaultCpuSet":"0,3-11","entries":{"u1":{"a":"1","b":"2"}},'
        '"podEntries":{"u1":{"cpuSet":"1-2"}}}'
    )
    expected = (
        '{"policyName":"static","defaultCpuSet":"0,3-11","entries":{"u1":{"a":"1","b":"2"}},'
        '"podEntries":{"u1":{"cpuSet":"1-2"}},"checksum":0,"data":' + json.dumps(data, separators=(",", ":")) + ","
        f'"dataChecksum":{fnv1a_32_text("(string)" + data)}}}'
    )
    assert encode(state, "static") == expected


def test_fresh_checkpoint_omits_empty_maps() -> None:
    state, text = checkpoint.restore(None, "none")
    assert state == CPUState()
    assert text == (
        '{"policyName":"none","defaultCpuSet":"","checksum":0,'
        '"data":"{\\"policyName\\":\\"none\\",\\"defaultCpuSet\\":\\"\\"}","dataChecksum":3028111495}'
    )


def test_empty_pod_entry_is_written_as_empty_object() -> None:
    text = encode(CPUState(pod_entries={"p": CPUSet()}), "static")
    assert '"podEntries":{"p":{}}' in text
    assert decode(text, "static").pod_entries == {"p": CPUSet()}


def test_html_characters_are_escaped_like_go() -> None:
    state = CPUState(assignments={"<pod>": {"a&b": CPUSet.parse("1")}})
    text = encode(state, "static")
    assert "<" not in text and "&" not in text
    assert '"\\u003cpod\\u003e"' in text
    assert decode(text, "static") == state


def _tamper_data(text: str) -> str:
    top = json.loads(text)
    top["data"] = top["data"].replace('"defaultCpuSet":"0-3"', '"defaultCpuSet":"0-4"')
    return json.dumps(top)


def test_changed_data_is_corrupted() -> None:
    text = encode(CPUState(CPUSet.parse("0-3")), "static")
    with pytest.raises(CheckpointError, match=r"^could not load v4 checkpoint: checkpoint is corrupted$"):
        decode(_tamper_data(text), "static")


def test_changed_data_checksum_is_corrupted() -> None:
    top = json.loads(encode(CPUState(CPUSet.parse("0-3")), "static"))
    top["dataChecksum"] += 1
    with pytest.raises(CheckpointError, match=r"^could not load v4 checkpoint: checkpoint is corrupted$"):
        decode(json.dumps(top), "static")


def test_changed_v3_file_is_corrupted() -> None:
    text = encode(CPUState(CPUSet.parse("0-3")), "static", format="v3").replace('"0-3"', '"0-4"')
    with pytest.raises(CheckpointError, match=r"^checkpoint is corrupted$"):
        decode(text, "static")


def test_v2_with_zero_checksum_is_accepted() -> None:
    text = '{"policyName":"static","defaultCpuSet":"0-3","entries":{"p":{"c":"4"}},"checksum":0}'
    assert decode(text, "static") == CPUState(CPUSet.parse("0-3"), {"p": {"c": CPUSet.parse("4")}})


def test_v2_checksum_under_versioned_name_needs_gate_off() -> None:
    state = CPUState(CPUSet.parse("0-3"))
    versioned = checkpoint.legacy_checksum(state, "static", format="v2", type_name="state.CPUManagerCheckpointV2")
    text = json.dumps({"policyName": "static", "defaultCpuSet": "0-3", "checksum": versioned})
    assert decode(text, "static", pod_level_gate=False) == state
    with pytest.raises(CheckpointError, match=r"^checkpoint is corrupted$"):
        decode(text, "static", pod_level_gate=True)


def test_v1_file_is_rejected_with_go_type_error() -> None:
    text = '{"policyName":"none","defaultCpuSet":"1-3","entries":{"containerID":"1-2"},"checksum":123}'
    with pytest.raises(CheckpointError) as failure:
        decode(text, "none")
    assert str(failure.value) == (
        "json: cannot unmarshal string into Go struct field CPUManagerCheckpointV2.entries of type map[string]string"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "unexpected end of JSON input"),
        ("", "unexpected end of JSON input"),
        ("{}x", "invalid character 'x' after top-level value"),
        (
            '{"dataChecksum":5}',
            "could not load v4 checkpoint: failed to deserialize cpu manager checkpoint data: "
            "unexpected end of JSON input",
        ),
        (
            '{"data":"{\\"policyName\\":\\"static\\",\\"podEntries\\":{\\"p\\":{\\"cpuSet\\":\\"x\\"}}}"}',
            "could not load v4 checkpoint: failed to deserialize cpu manager checkpoint data: "
            'failed to parse cpuset: strconv.Atoi: parsing "x": invalid syntax',
        ),
        ("null", 'configured policy "static" differs from state checkpoint policy ""'),
    ],
)
def test_broken_files(text: str, message: str) -> None:
    with pytest.raises(CheckpointError) as failure:
        decode(text, "static")
    assert str(failure.value) == message


def test_bad_default_cpuset() -> None:
    text = '{"policyName":"static","defaultCpuSet":"3-1","checksum":0}'
    with pytest.raises(CheckpointError) as failure:
        decode(text, "static")
    assert str(failure.value) == 'could not parse default CPU set "3-1": invalid range "3-1" (3 > 1)'


def test_restore_wraps_errors_with_path() -> None:
    with pytest.raises(CheckpointError) as failure:
        checkpoint.restore("{", "static", path="/var/lib/podshim/cpu_manager_state")
    assert str(failure.value) == (
        "could not restore state from checkpoint: unexpected end of JSON input, please drain this node and delete "
        'the CPU manager checkpoint file "/var/lib/podshim/cpu_manager_state" before restarting Kubelet'
    )


def test_migrated_v3_file_is_rewritten_as_v4() -> None:
    state = CPUState(CPUSet.parse("1-2"), {"pod1": {"c": CPUSet.parse("3")}}, {"pod2": CPUSet.parse("7-9")})
    restored = decode(encode(state, "static", format="v3"), "static")
    rewritten = json.loads(encode(restored, "static"))
    assert rewritten["checksum"] == 0 and "data" in rewritten
    assert decode(json.dumps(rewritten), "static") == state


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CPU checkpoint format"):
        encode(CPUState(), "static", format="v1")
