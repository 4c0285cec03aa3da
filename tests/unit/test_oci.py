"""OCI state / config.json parsing and container identity from CRI-O, containerd and podshim keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shim.frontends import oci


def test_runc_state_parsed() -> None:
    text = json.dumps(
        {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 4242, "bundle": "/run/b",
         "annotations": {"a": "b"}}
    )
    state = oci.parse_state(text)
    assert (state.id, state.status, state.pid, state.bundle) == ("c1", "creating", 4242, "/run/b")
    assert state.annotations == {"a": "b"} and state.root is None


def test_crun_state_extras_and_pid_zero() -> None:
    # crun sends "root" and gives container-namespace hooks pid 0.
    text = b'{"ociVersion":"1.0","id":"c","status":"created","pid":0,"bundle":"/b","root":"/b/rootfs"}'
    state = oci.parse_state(text)
    assert state.pid is None and state.root == "/b/rootfs" and state.annotations == {}


def test_legacy_bundle_path_accepted() -> None:
    assert oci.parse_state('{"id": "c", "bundlePath": "/old"}').bundle == "/old"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty input"),
        ("   \n", "empty input"),
        ("{not json", "invalid JSON"),
        ("[1]", "expected a JSON object, got list"),
        ('{"id": "c"}', "missing 'bundle'"),
        ('{"id": "c", "bundle": "rel/dir"}', "must be an absolute path"),
        ('{"bundle": "/b"}', "missing 'id'"),
        ('{"id": "c", "bundle": "/b", "pid": -3}', "'pid' must be a non-negative integer"),
        ('{"id": "c", "bundle": "/b", "pid": true}', "'pid' must be a non-negative integer"),
        ('{"id": "c", "bundle": "/b", "annotations": []}', "annotations must be an object"),
        ('{"id": "c", "bundle": "/b", "annotations": {"k": 1}}', "annotation 'k' must be a string"),
    ],
)
def test_bad_state_is_one_line(text: str, problem: str) -> None:
    with pytest.raises(oci.OCIError) as caught:
        oci.parse_state(text)
    message = str(caught.value)
    assert problem in message and "\n" not in message and message.startswith("OCI state (stdin)")


def test_config_fields(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"annotations": {"x": "y"}, "linux": {"cgroupsPath": "kubepods-pod1.slice:cri-containerd:abc"}})
    )
    config = oci.load_config(tmp_path)
    assert config.annotations == {"x": "y"}
    assert config.cgroups_path == "kubepods-pod1.slice:cri-containerd:abc"
    assert config.path == str(tmp_path / "config.json")


def test_config_missing_or_bad_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(oci.OCIError, match=r"config\.json: cannot read: No such file"):
        oci.load_config(tmp_path)
    (tmp_path / "config.json").write_text('{"linux": {"cgroupsPath": 7}}')
    with pytest.raises(oci.OCIError, match=r"config\.json: linux\.cgroupsPath must be a string"):
        oci.load_config(tmp_path)


CONTAINERD_APP = {
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.sandbox-uid": "uid-cd",
    "io.kubernetes.cri.container-name": "app",
    "io.kubernetes.cri.sandbox-name": "pod",
}
CRIO_APP = {
    "io.kubernetes.cri-o.ContainerType": "container",
    "io.kubernetes.pod.uid": "uid-crio",
    "io.kubernetes.container.name": "web",
}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (CONTAINERD_APP, oci.Identity("uid-cd", "app", False)),
        (CRIO_APP, oci.Identity("uid-crio", "web", False)),
        ({"podshim.io/pod-uid": "uid-p", "podshim.io/container": "c"}, oci.Identity("uid-p", "c", False)),
        # podshim's own keys win over the runtime's.
        ({**CRIO_APP, "podshim.io/pod-uid": "uid-p"}, oci.Identity("uid-p", "web", False)),
        ({**CONTAINERD_APP, "io.kubernetes.cri.container-type": "sandbox"}, oci.Identity("uid-cd", "app", True)),
        ({"io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.pod.uid": "u"}, oci.Identity("u", None, True)),
        ({"io.kubernetes.docker.type": "podsandbox"}, oci.Identity(None, None, True)),
        ({"io.kubernetes.pod.uid": "  "}, oci.Identity(None, None, False)),
        ({}, oci.Identity(None, None, False)),
    ],
)
def test_identify(annotations: dict[str, str], expected: oci.Identity) -> None:
    assert oci.identify(annotations) == expected


def test_only_named_non_sandbox_containers_are_pod_containers() -> None:
    assert oci.identify(CONTAINERD_APP).is_pod_container
    assert not oci.identify({**CONTAINERD_APP, "io.kubernetes.cri.container-type": "sandbox"}).is_pod_container
    assert not oci.identify({"io.kubernetes.pod.uid": "u"}).is_pod_container


def test_state_annotations_override_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"annotations": {"k": "config", "only": "c"}}))
    state = oci.parse_state(json.dumps({"id": "c", "bundle": str(tmp_path), "annotations": {"k": "state"}}))
    assert oci.merged_annotations(state, oci.load_config(tmp_path)) == {"k": "state", "only": "c"}
