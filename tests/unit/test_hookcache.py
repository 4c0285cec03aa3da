"""The embedded hook's cache (``podshim_cache.json``): config, sysfs topology and pod index are
served from it while their keys hold, recomputed when a key changes, and a broken cache file is
ignored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hook_world import HookWorld, pod, podshim_annotations, res
from shared_paths import SYSFS_FIXTURES

from shim.config import ConfigError, load_config
from shim.frontends import hook, hookcache
from shim.frontends.hookcache import CACHE_NAME, HookCache
from shim.topology.model import Topology
from shim.topology.sysfs import discover

FIXTURE = SYSFS_FIXTURES / "16amd64-8n2c-cpusets"
CONFIG = {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0", "topologyManagerPolicy": "single-numa-node"}


def _roundtrip(cache: HookCache) -> HookCache:
    """Save what a hook call learned and load it as the next call would."""
    cache.save()
    return HookCache.load(cache.state_dir)


def test_config_is_served_from_the_cache_until_the_file_changes(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    path = tmp_path / "kubelet.yaml"
    path.write_text("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\ntopologyManagerPolicy: restricted\n")
    first = HookCache.load(tmp_path / "state")
    assert first.config(str(path)) == load_config(path) and first.hits == []
    second = _roundtrip(first)
    assert second.config(str(path)) == load_config(path) and second.hits == ["config"]
    path.write_text("cpuManagerPolicy: static\nreservedSystemCPUs: '0-1'\ntopologyManagerPolicy: none\n")
    third = _roundtrip(second)
    config = third.config(str(path))
    assert third.hits == [] and config.topology_manager_policy == "none" and str(config.reserved_system_cpus) == "0-1"


def test_json_config_needs_no_yaml(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.json"
    path.write_text(json.dumps(CONFIG))
    config = load_config(path)
    assert config.topology_manager_policy == "single-numa-node" and config.source == str(path)
    path.write_text("{oops")
    with pytest.raises(ConfigError, match=r"kubelet\.json: invalid JSON at line 1"):
        load_config(path)


def test_invalid_config_is_not_cached(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    path = tmp_path / "kubelet.json"
    path.write_text(json.dumps({"cpuManagerPolicy": "dynamic"}))
    cache = HookCache.load(tmp_path / "state")
    with pytest.raises(ConfigError, match="cpuManagerPolicy"):
        cache.config(str(path))
    assert "config" not in cache.doc and not cache.changed


def test_yaml_that_json_cannot_carry_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_text("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\nsomeDate: 2001-01-01\n")
    cache = HookCache(tmp_path)
    assert cache.config(str(path)) == load_config(path)
    assert "config" not in cache.doc


def _counting(root: Path) -> tuple[Callable[[], Topology], list[int]]:
    calls: list[int] = []

    def run() -> Topology:
        calls.append(1)
        return discover(root)

    return run, calls


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sysfs"
    shutil.copytree(FIXTURE, root, symlinks=True)
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(hookcache, "BOOT_ID", str(boot))
    (tmp_path / "state").mkdir()
    return root


def test_topology_is_served_from_the_cache_while_the_machine_is_the_same(tmp_path: Path, sysfs: Path) -> None:
    run, calls = _counting(sysfs)
    cache = HookCache.load(tmp_path / "state")
    found = cache.topology(str(sysfs), run)
    assert calls == [1] and found == discover(sysfs)
    again = _roundtrip(cache)
    assert again.topology(str(sysfs), run) == found
    assert calls == [1] and again.hits == ["topology"]


@pytest.mark.parametrize(
    "change",
    [
        "reboot",
        "sys/devices/system/cpu/online",
        "sys/devices/system/node/online",
        "hugepages",
        "proc/self/cgroup",
    ],
)
def test_topology_is_rediscovered_when_its_key_changes(
    tmp_path: Path, sysfs: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    run, calls = _counting(sysfs)
    cache = HookCache.load(tmp_path / "state")
    cache.topology(str(sysfs), run)
    cache.save()
    if change == "reboot":
        Path(hookcache.BOOT_ID).write_text("boot-2\n")
    elif change == "hugepages":
        pool = next((sysfs / "sys/devices/system/node").glob("node*/hugepages/hugepages-*/nr_hugepages"), None)
        if pool is None:
            pool = sysfs / "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
            pool.parent.mkdir(parents=True, exist_ok=True)
        pool.write_text("7\n")
    else:
        target = sysfs / change
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((target.read_text() if target.exists() else "") + "\n")  # same meaning, new text
    HookCache.load(tmp_path / "state").topology(str(sysfs), run)
    assert calls == [1, 1]


def test_broken_or_foreign_cache_files_are_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for text in ("{not json", json.dumps({"version": 999, "config": {}}), "[]"):
        (state / CACHE_NAME).write_text(text)
        assert HookCache.load(state).doc == {"version": hookcache.VERSION}


def test_save_never_creates_the_state_dir(tmp_path: Path) -> None:
    cache = HookCache(tmp_path / "missing")
    cache.doc["x"] = 1
    cache.changed = True
    cache.save()
    assert not (tmp_path / "missing").exists()


EXCL = pod("excl", "uid-excl", [{"name": "main", "resources": res("2", "1Gi")}], res("2", "1Gi"))
OTHER = pod("other", "uid-other", [{"name": "side"}])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HookWorld:
    world = HookWorld(tmp_path, monkeypatch)
    world.state_dir.mkdir()
    return world


def test_pod_index_serves_unchanged_files_without_reading_them(world: HookWorld) -> None:
    world.add_pod(EXCL)
    (world.pod_dir / "other.yaml").write_text(json.dumps(OTHER))
    cache = HookCache.load(world.state_dir)
    expected = hook.find_pod(world.pod_dir, "uid-excl")
    assert hook.find_pod(world.pod_dir, "uid-excl", cache=cache) == expected
    cache = _roundtrip(cache)
    assert hook.find_pod(world.pod_dir, "uid-excl", cache=cache) == expected
    assert cache.hits == ["pod:excl.json"]
    # a uid the indexed file does not hold: no read, then the unindexed file is read and parsed
    assert hook.find_pod(world.pod_dir, "uid-other", cache=cache) == hook.find_pod(world.pod_dir, "uid-other")
    assert hook.find_pod(world.pod_dir, "uid-none", cache=cache) is None


def test_pod_index_follows_edits_and_removals(world: HookWorld) -> None:
    world.add_pod(EXCL)
    cache = HookCache.load(world.state_dir)
    assert hook.find_pod(world.pod_dir, "uid-excl", cache=cache) is not None
    edited = pod("excl", "uid-excl", [{"name": "renamed", "resources": res("1", "1Gi")}])
    world.add_pod(edited)
    cache = _roundtrip(cache)
    found = hook.find_pod(world.pod_dir, "uid-excl", cache=cache)
    assert found is not None and [c.name for c in found.containers] == ["renamed"] and cache.hits == []
    (world.pod_dir / "excl.json").unlink()
    cache = _roundtrip(cache)
    assert hook.find_pod(world.pod_dir, "uid-excl", cache=cache) is None
    assert cache.doc["pods"][str(world.pod_dir)] == {}


def test_malformed_indexed_pod_file_still_fails(world: HookWorld) -> None:
    world.add_pod(EXCL)
    cache = _roundtrip(HookCache.load(world.state_dir))
    hook.find_pod(world.pod_dir, "uid-excl", cache=cache)
    broken = {"metadata": {"uid": "uid-excl", "name": "x"}, "spec": {"containers": 7}}
    (world.pod_dir / "excl.json").write_text(json.dumps(broken))
    with pytest.raises(hook.UsageError, match=r"excl\.json"):
        hook.find_pod(world.pod_dir, "uid-excl", cache=_roundtrip(cache))


def test_hook_uses_the_cache_and_decides_the_same(world: HookWorld) -> None:
    world.add_pod(EXCL)
    world.add_pod(OTHER)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    assert world.run("createRuntime", state) == 0
    written = json.loads((world.state_dir / CACHE_NAME).read_text())
    assert set(written) >= {"version", "config", "pods"}
    assert world.run("poststop", state) == 0
    assert world.run("createRuntime", world.container("c-side", podshim_annotations("uid-other", "side"), pid=101)) == 0
    assert world.run("createRuntime", state) == 0  # warm: config and pod from the cache
    cpus = world.cpu_state()["entries"]["uid-excl"]["main"]
    shared = world.cpu_state()["defaultCpuSet"]
    assert world.applied()[-2:] == [("kubepods/c-main", cpus), ("kubepods/c-side", shared)]  # + registry re-apply
    assert set(world.registry()["pods"]) == {"uid-excl", "uid-other"}
