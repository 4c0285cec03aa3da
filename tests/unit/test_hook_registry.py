"""The registry file keeps the daemon's ``--pod-dir`` marks whoever rewrites it."""

from __future__ import annotations

import json

from shim.actors.stores import MemoryCheckpointStore
from shim.frontends.hook_registry import REGISTRY_NAME, ContainerRecord, Registry
from shim.pod import Pod


def _pod(uid: str) -> Pod:
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": {"containers": [{"name": "c"}]}})


def test_marks_survive_a_rewrite_and_follow_the_pods() -> None:
    store = MemoryCheckpointStore()
    daemon_side = Registry()
    for uid in ("a", "b"):
        daemon_side.record(_pod(uid), "c", ContainerRecord(cgroup=f"/{uid}"))
    daemon_side.pod_dir_pods.update({"a", "b", "never-registered"})
    store.save(REGISTRY_NAME, daemon_side.text())
    assert json.loads(store.documents[REGISTRY_NAME])["pod_dir_pods"] == ["a", "b"]

    # The embedded hook (same state directory) releases b's last container and writes back.
    hook_side = Registry.load(store)
    assert hook_side.pod_dir_pods == {"a", "b"}
    assert hook_side.forget("b", "c")
    hook_side.save(store)
    document = json.loads(store.documents[REGISTRY_NAME])
    assert document["pod_dir_pods"] == ["a"] and list(document["pods"]) == ["a"]


def test_a_file_without_marks_marks_nothing() -> None:
    store = MemoryCheckpointStore({REGISTRY_NAME: json.dumps({"version": 1, "pods": {}})})
    assert Registry.load(store).pod_dir_pods == set()
