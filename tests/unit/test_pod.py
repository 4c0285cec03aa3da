"""Pod model: manifests, defaulting, QoS with pod-level resources, and input errors."""

from __future__ import annotations

from typing import Any

import pytest

from shim.pod import Pod, PodError, derive_uid, load_pods


def pod(containers: list[dict[str, Any]], *, resources: dict[str, Any] | None = None,
        init: list[dict[str, Any]] | None = None, uid: str | None = "u1") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init is not None:
        spec["initContainers"] = init
    if resources is not None:
        spec["resources"] = resources
    metadata: dict[str, Any] = {"name": "p", "namespace": "ns"}
    if uid is not None:
        metadata["uid"] = uid
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def guaranteed(cpu: str, memory: str = "1Gi") -> dict[str, Any]:
    both = {"cpu": cpu, "memory": memory}
    return {"requests": dict(both), "limits": dict(both)}


def test_quantities_become_integers_and_kinds_are_set() -> None:
    p = Pod.from_dict(pod(
        [{"name": "app", "resources": guaranteed("1500m", "1Gi")}],
        init=[{"name": "init", "resources": guaranteed("2")},
              {"name": "side", "restartPolicy": "Always", "resources": guaranteed("1")}],
    ))
    assert [(c.name, c.kind) for c in p.all_containers()] == [("init", "init"), ("side", "sidecar"), ("app", "app")]
    app = p.container("app")
    assert app.request("cpu") == 1500 and app.request("memory") == 2**30
    assert app.integral_cpus() == 0
    assert p.container("init").integral_cpus() == 2


def test_limits_default_requests_like_the_api_server() -> None:
    p = Pod.from_dict(pod([{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]))
    assert p.container("a").resources.requests == {"cpu": 2000, "memory": 2**30}
    raw = Pod.from_dict(pod([{"name": "a", "resources": {"limits": {"cpu": "2"}}}]), apply_defaults=False)
    assert raw.container("a").resources.requests == {}


@pytest.mark.parametrize(
    ("containers", "pod_resources", "expected"),
    [
        ([{"name": "a"}], None, "BestEffort"),
        ([{"name": "a", "resources": guaranteed("1")}], None, "Guaranteed"),
        ([{"name": "a", "resources": {"requests": {"cpu": "1"}}}], None, "Burstable"),
        ([{"name": "a", "resources": guaranteed("1")}, {"name": "b"}], None, "Burstable"),
        # pod-level resources take precedence over containers (KEP-2837)
        ([{"name": "a"}, {"name": "b"}], guaranteed("4"), "Guaranteed"),
        ([{"name": "a", "resources": guaranteed("1")}],
         {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}, "Burstable"),
        ([{"name": "a", "resources": guaranteed("1")}], {"limits": {"cpu": "4"}}, "Burstable"),
    ],
)
def test_qos_class(containers: list[dict[str, Any]], pod_resources: dict[str, Any] | None, expected: str) -> None:
    assert Pod.from_dict(pod(containers, resources=pod_resources)).qos_class() == expected


def test_qos_ignores_pod_level_resources_when_the_gate_is_off() -> None:
    p = Pod.from_dict(pod([{"name": "a"}], resources=guaranteed("4")))
    assert p.qos_class(pod_level_resources=True) == "Guaranteed"
    assert p.qos_class(pod_level_resources=False) == "BestEffort"


def test_container_equivalent_guaranteed() -> None:
    p = Pod.from_dict(pod([
        {"name": "g", "resources": guaranteed("2")},
        {"name": "cpu-only", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}},
        {"name": "none"},
    ], resources=guaranteed("5")))
    assert p.container("g").is_guaranteed_equivalent()
    assert not p.container("cpu-only").is_guaranteed_equivalent()
    assert not p.container("none").is_guaranteed_equivalent()
    assert p.has_pod_level_resources()


def test_missing_uid_is_derived_deterministically() -> None:
    a = Pod.from_dict(pod([{"name": "a"}], uid=None))
    b = Pod.from_dict(pod([{"name": "a"}], uid=None))
    assert a.uid == b.uid == derive_uid("ns", "p") and a.uid_derived


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        (pod([{"name": "a"}, {"name": "a"}]), "spec.containers[1].name: duplicate container name (got 'a')"),
        (pod([{"name": "a", "resources": {"requests": {"cpu": "x"}}}]), "spec.containers[0].resources.requests.cpu"),
        (pod([{"name": "a", "resources": {"requests": {"memory": "-1"}}}]), "must be greater than or equal to 0"),
        (pod([{"name": "a", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]),
         "spec.containers[0].resources.requests.cpu: must be less than or equal to the cpu limit"),
        (pod([{"name": "a"}], init=[{"name": "i", "restartPolicy": "OnFailure"}]),
         "spec.initContainers[0].restartPolicy"),
        (pod([]), "spec.containers: a pod needs at least one container"),
        ({"kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "a"}]}}, "metadata.name"),
        ({"kind": "Service", "metadata": {"name": "x"}}, "kind"),
        (pod([{"resources": {}}]), "spec.containers[0].name"),
    ],
)
def test_bad_input_names_the_field(manifest: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PodError) as err:
        Pod.from_dict(manifest)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_load_pods_handles_lists_and_documents() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: one, uid: a}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: List
items:
- {kind: Pod, metadata: {name: two, uid: b}, spec: {containers: [{name: c}]}}
- {kind: Pod, metadata: {name: three, uid: c}, spec: {containers: [{name: c}]}}
"""
    assert [p.name for p in load_pods(text)] == ["one", "two", "three"]
    as_json = '{"kind": "Pod", "metadata": {"name": "j"}, "spec": {"containers": [{"name": "c"}]}}'
    assert load_pods(as_json)[0].name == "j"


def test_load_pods_reports_yaml_errors_in_one_line() -> None:
    with pytest.raises(PodError) as err:
        load_pods("kind: Pod\nmetadata: {name: x\n", source="bad.yaml")
    assert str(err.value).startswith("bad.yaml: invalid YAML at line")
    assert "\n" not in str(err.value)


def test_ephemeral_containers_are_not_allocated_for() -> None:
    manifest = pod([{"name": "a", "resources": guaranteed("1")}])
    manifest["spec"]["ephemeralContainers"] = [{"name": "debug", "resources": guaranteed("2")}]
    p = Pod.from_dict(manifest)
    assert [c.name for c in p.all_containers()] == ["a"]
    with pytest.raises(KeyError):
        p.container("debug")
