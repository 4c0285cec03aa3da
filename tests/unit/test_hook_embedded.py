"""``podshim hook`` embedded mode on a fake host: managed, unmanaged, sandbox, rejected and
unpinnable containers, release at poststop, the registry re-apply, the lock and bad input."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from hook_world import HookWorld, pod, podshim_annotations, res

from shim.actors.stores import StateLockBusy, state_lock
from shim.cgroups.writer import ApplyResult, ApplyTarget, RecordingBackend
from shim.frontends import hook

EXCL = pod("excl", "uid-excl", [{"name": "main", "resources": res("2", "1Gi")}], res("2", "1Gi"))
SHARED = pod("shared", "uid-shared", [{"name": "web", "resources": res("100m", "64Mi", limit_cpu="200m")}])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HookWorld:
    return HookWorld(tmp_path, monkeypatch)


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_managed_container_is_pinned_and_recorded(world: HookWorld) -> None:
    world.add_pod(EXCL)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    assert world.run("createRuntime", state) == 0
    cpus = world.cpu_state()["entries"]["uid-excl"]["main"]
    assert world.applied() == [("kubepods/c-main", cpus)]
    (target,) = world.writer.targets
    assert target.quota == "unlimited" and target.pid == 100 and target.mems == (0,)
    assert world.writer.affinity == {100: target.cpus}
    record = world.registry()["pods"]["uid-excl"]["containers"]["main"]
    assert record == {"cgroup": "/kubepods/c-main", "pid": 100, "cpus": cpus, "mems": "0"}


def test_cgroups_path_used_without_pid(world: HookWorld) -> None:
    world.add_pod(SHARED)
    state = world.container("c-web", podshim_annotations("uid-shared", "web"), cgroups_path="/elsewhere/c-web")
    assert world.run("prestart", state) == 0  # prestart = createRuntime
    assert world.applied() == [("elsewhere/c-web", "0-3")]
    assert world.writer.targets[0].quota is not None and world.writer.targets[0].pid is None


def test_poststop_releases_the_pod(world: HookWorld) -> None:
    world.add_pod(EXCL)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    assert world.run("createRuntime", state) == 0
    assert world.run("poststop", {**state, "status": "stopped"}) == 0
    cpu = world.cpu_state()
    assert cpu["defaultCpuSet"] == "0-3"
    assert "uid-excl" not in cpu.get("entries", {}) and "uid-excl" not in cpu.get("podEntries", {})
    assert world.registry()["pods"] == {}


@pytest.mark.parametrize(
    "annotations",
    [
        podshim_annotations("uid-unknown", "main"),  # no pod with that uid in --pod-dir
        podshim_annotations("uid-excl", "not-in-spec"),  # a container the pod does not declare
        {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-uid": "uid-excl"},
        {"io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.pod.uid": "uid-excl",
         "io.kubernetes.container.name": "main"},
        {},
    ],
)
@pytest.mark.parametrize("stage", ["createRuntime", "poststop"])
def test_not_ours_exits_0_and_writes_nothing(
    world: HookWorld, capsys: pytest.CaptureFixture[str], annotations: dict[str, str], stage: str
) -> None:
    world.add_pod(EXCL)
    state = world.container("c-x", annotations, pid=100)
    assert world.run(stage, state) == 0
    assert world.writer.targets == []
    assert not world.state_dir.exists()
    assert capsys.readouterr().err == ""


def test_containerd_and_crio_keys_identify(world: HookWorld) -> None:
    world.add_pod(SHARED)
    world.add_pod(pod("other", "uid-other", [{"name": "side"}]))
    containerd = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-uid": "uid-shared",
                  "io.kubernetes.cri.container-name": "web"}
    crio = {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.pod.uid": "uid-other",
            "io.kubernetes.container.name": "side"}
    assert world.run("createRuntime", world.container("c1", containerd, pid=11)) == 0
    assert world.run("createRuntime", world.container("c2", crio, pid=12)) == 0
    assert set(world.registry()["pods"]) == {"uid-shared", "uid-other"}


def test_rejected_pod_fails_with_one_line(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.add_pod(pod("big", "uid-big", [{"name": "hog", "resources": res("4", "1Gi")}]))  # CPU 0 is reserved
    assert world.run("createRuntime", world.container("c-hog", podshim_annotations("uid-big", "hog"), pid=7)) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("podshim hook: pod big (uid-big) rejected: ") and "not enough cpus" in line
    assert world.writer.targets == []
    assert "uid-big" not in json.dumps(world.cpu_state())


def test_unpinnable_container_fails_and_gives_back(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.add_pod(EXCL)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    world.writer.memory.fail[f"{world.cpuset_mount}/kubepods/c-main/cpuset.cpus"] = errno.EACCES
    assert world.run("createRuntime", state) == 3
    line = _one_line(capsys.readouterr().err)
    assert "cannot pin container main of pod excl (uid-excl)" in line and "Permission denied" in line
    cpu = world.cpu_state()
    assert "uid-excl" not in cpu.get("entries", {}) and cpu["defaultCpuSet"] == "0-3"
    assert not (world.state_dir / "podshim_containers.json").exists()


def test_unlocatable_container_fails(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.add_pod(EXCL)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), cgroups_path="/a/../../etc")
    assert world.run("createRuntime", state) == 3
    assert "contains '..'" in _one_line(capsys.readouterr().err)


def test_exclusive_admission_narrows_registered_shared_containers(world: HookWorld) -> None:
    world.add_pod(SHARED)
    world.add_pod(EXCL)
    assert world.run("createRuntime", world.container("c-web", podshim_annotations("uid-shared", "web"), pid=5)) == 0
    excl = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=6)
    assert world.run("createRuntime", excl) == 0
    exclusive = world.cpu_state()["entries"]["uid-excl"]["main"]
    shared_now = world.cpu_state()["defaultCpuSet"]
    expected = [("kubepods/c-web", "0-3"), ("kubepods/c-main", exclusive), ("kubepods/c-web", shared_now)]
    assert world.applied() == expected
    assert world.writer.targets[-1].pid is None  # re-apply moves the cgroup, not a stale pid
    assert world.registry()["pods"]["uid-shared"]["containers"]["web"]["cpus"] == shared_now
    # and back when the exclusive container stops
    assert world.run("poststop", excl) == 0
    assert world.applied()[-1] == ("kubepods/c-web", "0-3")


def test_vanished_registered_container_is_forgotten(world: HookWorld) -> None:
    world.add_pod(SHARED)
    world.add_pod(EXCL)
    assert world.run("createRuntime", world.container("c-web", podshim_annotations("uid-shared", "web"), pid=5)) == 0
    for mount in (world.cpuset_mount, world.cpu_mount):
        (mount / "kubepods/c-web").rmdir()
    assert world.run("createRuntime", world.container("c-main", podshim_annotations("uid-excl", "main"), pid=6)) == 0
    assert set(world.registry()["pods"]) == {"uid-excl"}


def test_apply_runs_under_the_state_lock(world: HookWorld) -> None:
    world.add_pod(EXCL)
    seen: list[bool] = []

    class Probe(RecordingBackend):
        def apply(self, target: ApplyTarget) -> ApplyResult:
            try:
                with state_lock(world.state_dir, blocking=False):
                    seen.append(False)
            except StateLockBusy:
                seen.append(True)
            return super().apply(target)

    world.backend.writer = Probe()
    assert world.run("createRuntime", world.container("c-main", podshim_annotations("uid-excl", "main"), pid=9)) == 0
    assert seen == [True]


def test_pod_files_without_the_uid_are_not_parsed(world: HookWorld) -> None:
    (world.pod_dir / "broken.yaml").write_text("{{{ not yaml")
    (world.pod_dir / "notes.txt").write_text("uid-excl")  # not a pod file suffix
    world.add_pod(EXCL)
    assert hook.find_pod(world.pod_dir, "uid-excl") is not None
    assert hook.find_pod(world.pod_dir, "uid-none") is None
    assert hook.find_pod(world.base / "missing", "uid-excl") is None


@pytest.mark.parametrize(
    ("stage", "stdin", "problem"),
    [
        ("createRuntime", b"", "OCI state (stdin): empty input"),
        ("createRuntime", b"{oops", "OCI state (stdin): invalid JSON"),
        ("createRuntime", b'{"id": "c"}', "missing 'bundle'"),
        ("createRuntime", b'{"id": "c", "bundle": "/nonexistent-podshim"}', "config.json: cannot read"),
        ("createContainer", b"{}", "hook stage createContainer is not supported"),
        ("poststart", b"{}", "hook stage poststart is not supported"),
        ("bogus", b"{}", "unknown hook stage 'bogus'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    world: HookWorld, capsys: pytest.CaptureFixture[str], stage: str, stdin: bytes, problem: str
) -> None:
    assert world.run(stage, stdin) == 2
    assert problem in _one_line(capsys.readouterr().err)


def test_malformed_pod_file_of_a_managed_pod_exits_2(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    (world.pod_dir / "bad.yaml").write_text("metadata: {uid: uid-bad, name: bad}\nspec: {containers: 7}\n")
    assert world.run("createRuntime", world.container("c", podshim_annotations("uid-bad", "x"), pid=3)) == 2
    assert "bad.yaml" in _one_line(capsys.readouterr().err)
    assert not world.state_dir.exists()


def test_bad_config_exits_2(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.add_pod(EXCL)
    world.config.write_text("cpuManagerPolicy: dynamic\n")
    assert world.run("createRuntime", world.container("c", podshim_annotations("uid-excl", "main"), pid=3)) == 2
    assert "cpuManagerPolicy" in _one_line(capsys.readouterr().err)
