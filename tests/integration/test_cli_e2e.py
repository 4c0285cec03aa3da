"""End to end through ``podshim admit / remove / state / replay``: the KEP-5526 tables of
spec/README.md in both scopes, the state files the kubelet would read, rollback, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_e2e_pods import GiB, pod, write_config, write_machine, write_pods

from shim.cpu import checkpoint as cpu_checkpoint
from shim.cpuset import CPUSet
from shim.frontends.cli import main
from shim.memory import checkpoint as memory_checkpoint

REPO = Path(__file__).resolve().parents[2]
EMPTY_POOL = (
    "pod rejected, sum of exclusive container cpu requests equals pod budget, leaving no cpus for shared containers"
)


class Cli:
    """Runs ``main()`` in-process against one machine file."""

    def __init__(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.directory = directory
        self.capsys = capsys
        self.machine = write_machine(directory)

    def config(self, scope: str = "pod", policy: str = "best-effort") -> Path:
        return write_config(self.directory, scope=scope, policy=policy)

    def run(self, *argv: str | Path) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def admit(self, *pods: dict[str, Any], scope: str = "pod", policy: str = "best-effort",
              state_dir: Path | None = None) -> tuple[int, list[dict[str, Any]]]:
        path = write_pods(self.directory, f"pods-{pods[0]['metadata']['uid']}", *pods)
        argv: list[str | Path] = ["admit", path, "--topology", self.machine, "--config", self.config(scope, policy),
                                  "--output", "json"]
        if state_dir is not None:
            argv += ["--state-dir", state_dir]
        code, out, err = self.run(*argv)
        assert err == ""
        return code, json.loads(out)["pods"]

    def node_args(self, state_dir: Path, scope: str = "pod") -> list[str | Path]:
        return ["--topology", self.machine, "--config", self.config(scope), "--state-dir", state_dir]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, capsys)


def containers(result: dict[str, Any]) -> dict[str, tuple[str, str, str, str]]:
    return {c["name"]: (c["cpus"], c["mems"], c["isolation"], c["cpu_quota"]) for c in result["containers"]}


EXCLUSIVE = ("0", "container", "unlimited")
POD_SHARED = ("0", "pod", "limited")
HOST = ("0-1", "host", "limited")

# spec/README.md "Worked CPU examples" (NUMA node 0 free, one pod of 5 CPUs), pod scope.
POD_SCOPE_TABLE = [
    ("3,1,1 all Guaranteed, no pod-level", None, [("a", 3), ("b", 1), ("c", 1)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4", *EXCLUSIVE), "c": ("5", *EXCLUSIVE)}),
    ("pod 5: 3, 1, 1", 5, [("a", 3), ("b", 1), ("c", 1)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4", *EXCLUSIVE), "c": ("5", *EXCLUSIVE)}),
    ("pod 5: 3, shared, shared", 5, [("a", 3), ("b", None), ("c", None)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4-5", *POD_SHARED), "c": ("4-5", *POD_SHARED)}),
    ("pod 5: shared x3", 5, [("a", None), ("b", None), ("c", None)],
     {"a": ("1-5", *POD_SHARED), "b": ("1-5", *POD_SHARED), "c": ("1-5", *POD_SHARED)}),
]

# The same pods in container scope: each Guaranteed container gets its own exclusive CPUs from
# the node, every other container runs in the node's shared pool with no NUMA preference.
CONTAINER_SCOPE_TABLE = [
    ("3,1,1 all Guaranteed, no pod-level", None, [("a", 3), ("b", 1), ("c", 1)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4", *EXCLUSIVE), "c": ("5", *EXCLUSIVE)}),
    ("pod 5: 3, 1, 1", 5, [("a", 3), ("b", 1), ("c", 1)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4", *EXCLUSIVE), "c": ("5", *EXCLUSIVE)}),
    ("pod 5: 3, shared, shared", 5, [("a", 3), ("b", None), ("c", None)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("0,4-15", *HOST), "c": ("0,4-15", *HOST)}),
    ("pod-level only: nothing exclusive", 5, [("a", None), ("b", None), ("c", None)],
     {"a": ("0-15", *HOST), "b": ("0-15", *HOST), "c": ("0-15", *HOST)}),
    ("pod 5: 3, 2, shared (no pod shared pool in this scope)", 5, [("a", 3), ("b", 2), ("c", None)],
     {"a": ("1-3", *EXCLUSIVE), "b": ("4-5", *EXCLUSIVE), "c": ("0,6-15", *HOST)}),
]


@pytest.mark.parametrize(("label", "budget", "spec", "expected"), POD_SCOPE_TABLE, ids=[r[0] for r in POD_SCOPE_TABLE])
def test_pod_scope_worked_examples(cli: Cli, label: str, budget: int | None, spec: list[Any],
                                   expected: dict[str, Any]) -> None:
    code, [result] = cli.admit(pod("p", spec, budget=budget))
    assert code == 0 and result["admitted"] is True, label
    assert containers(result) == expected
    assert result["hint"] == {"numa": [0], "preferred": True}
    if budget is None:
        assert result["pod"] is None
    else:
        assert result["pod"] == {"cpus": "1-5", "memory": {"numa": [0], "bytes": 5 * GiB}}
    assert [c["kind"] for c in result["containers"]] == ["app"] * 3


@pytest.mark.parametrize(("label", "budget", "spec", "expected"), CONTAINER_SCOPE_TABLE,
                         ids=[r[0] for r in CONTAINER_SCOPE_TABLE])
def test_container_scope_same_pods(cli: Cli, label: str, budget: int | None, spec: list[Any],
                                   expected: dict[str, Any]) -> None:
    code, [result] = cli.admit(pod("p", spec, budget=budget), scope="container")
    assert code == 0 and result["admitted"] is True, label
    assert containers(result) == expected
    assert result["pod"] is None  # container scope holds no bubble


def test_pod_scope_rejects_a_pod_without_shared_pool(cli: Cli) -> None:
    code, [result] = cli.admit(pod("p", [("a", 3), ("b", 2), ("c", None)], budget=5))
    assert code == 1
    assert (result["admitted"], result["reason"], result["message"]) == (False, "EmptyPodSharedPoolError", EMPTY_POOL)
    assert result["containers"] == [] and result["pod"] is None


def test_restricted_policy_rejects_it_at_the_merge(cli: Cli) -> None:
    code, [result] = cli.admit(pod("p", [("a", 3), ("b", 2), ("c", None)], budget=5), policy="restricted")
    assert code == 1
    assert result["reason"] == "TopologyAffinityError"
    assert result["message"].startswith("Pod Scope ")


def test_init_containers_and_sidecars_in_pod_scope(cli: Cli) -> None:
    spec: list[Any] = [("migrate", 4, "init"), ("mesh", 1, "sidecar"), ("app", None)]
    code, [result] = cli.admit(pod("p", spec, budget=6))
    assert code == 0
    assert result["pod"]["cpus"] == "1-6"
    got = containers(result)
    # The init container's slice is reused by the sidecar; the sidecar's slice stays out of the
    # pod shared pool for the pod's life.
    assert got["migrate"] == ("1-4", *EXCLUSIVE)
    assert got["mesh"] == ("1", *EXCLUSIVE)
    assert got["app"] == ("2-6", *POD_SHARED)
    assert [c["kind"] for c in result["containers"]] == ["init", "sidecar", "app"]


def _cpus(text: str) -> CPUSet:
    return CPUSet.parse(text)


def test_slices_are_disjoint_and_shared_containers_share_one_pool(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    pods = [
        pod("m1", [("a", 2), ("b", None), ("c", None)], budget=4),
        pod("m2", [("a", 1), ("b", 1), ("c", None)], budget=3),
        pod("m3", [("a", 1), ("b", 1)]),
        pod("m4", [("i", 2, "init"), ("s", 1, "sidecar"), ("a", None), ("b", None)], budget=4),
        pod("m5", [("a", None), ("b", None)], budget=2),
    ]
    # 15 allocatable CPUs, 15 requested: every pod fits, the last ones across both nodes.
    code, results = cli.admit(*pods, state_dir=state)
    assert code == 0 and all(r["admitted"] for r in results)
    owned: list[tuple[str, CPUSet]] = []
    for result in results:
        bubble = _cpus(result["pod"]["cpus"]) if result["pod"] else None
        shared = {c["cpus"] for c in result["containers"] if c["isolation"] == "pod"}
        assert len(shared) <= 1, f"{result['uid']}: shared containers differ: {shared}"
        app_slices = [_cpus(c["cpus"]) for c in result["containers"] if c["isolation"] == "container"
                      and c["kind"] != "init"]
        for index, cpus in enumerate(app_slices):
            assert all(not (cpus & other) for other in app_slices[index + 1:])
            if shared:
                assert not (cpus & _cpus(next(iter(shared))))
        held = bubble if bubble is not None else CPUSet.of(
            cpu for c in result["containers"] if c["isolation"] == "container" for cpu in _cpus(c["cpus"]))
        for container in result["containers"]:
            if container["isolation"] != "host":
                assert _cpus(container["cpus"]).is_subset_of(held)
        owned.append((result["uid"], held))
    for index, (uid, held) in enumerate(owned):
        for other_uid, other in owned[index + 1:]:
            assert not (held & other), f"{uid} and {other_uid} overlap"
    default = cpu_checkpoint.decode((state / "cpu_manager_state").read_text(), "static").default_cpuset
    assert all(not (held & default) for _, held in owned)


def test_state_files_after_admission_and_removal(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cpu_file, memory_file = state / "cpu_manager_state", state / "memory_manager_state"
    code, _ = cli.admit(pod("warm", [("a", 1)]), state_dir=state)
    code, _, _ = cli.run("remove", "warm", *cli.node_args(state))
    assert code == 0
    initial_cpu = cpu_checkpoint.decode(cpu_file.read_text(), "static")
    initial_memory = memory_checkpoint.decode(memory_file.read_text(), "Static")
    assert initial_cpu.default_cpuset == CPUSet.parse("0-15") and not initial_cpu.assignments

    code, _ = cli.admit(pod("p", [("a", 3), ("b", None), ("c", None)], budget=5), state_dir=state)
    assert code == 0
    cpu = cpu_checkpoint.decode(cpu_file.read_text(), "static")
    assert cpu.pod_entries == {"p": CPUSet.parse("1-5")}
    assert cpu.assignments["p"] == {"a": CPUSet.parse("1-3"), "b": CPUSet.parse("4-5"), "c": CPUSet.parse("4-5")}
    assert cpu.default_cpuset == CPUSet.parse("0,6-15")
    memory = memory_checkpoint.decode(memory_file.read_text(), "Static")
    assert [b.size for b in memory.pod_entries["p"]] == [5 * GiB]
    assert memory.machine_state[0].memory_map["memory"].free == initial_memory.machine_state[0].memory_map[
        "memory"].free - 5 * GiB

    # The bubble stays with the pod until its last container is gone.
    for name, last in (("a", False), ("b", False), ("c", True)):
        code, out, err = cli.run("remove", "p", "--container", name, *cli.node_args(state), "--output", "json")
        assert (code, err) == (0, "")
        removed = json.loads(out)
        assert removed["held"] is True
        cpu = cpu_checkpoint.decode(cpu_file.read_text(), "static")
        memory = memory_checkpoint.decode(memory_file.read_text(), "Static")
        assert ("p" in cpu.pod_entries) is not last
        assert ("p" in memory.pod_entries) is not last
        assert removed["freed_cpus"] == ("1-5" if last else "")
    assert cpu.default_cpuset == initial_cpu.default_cpuset and not cpu.assignments
    assert memory.machine_state == initial_memory.machine_state and not memory.assignments


def test_remove_whole_pod_and_unknown_pod(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli.admit(pod("p", [("a", 2), ("b", None)], budget=3), state_dir=state)
    code, out, _ = cli.run("remove", "p", *cli.node_args(state))
    assert code == 0 and "cpus back in the node's shared pool: 1-3" in out
    assert cpu_checkpoint.decode((state / "cpu_manager_state").read_text(), "static").default_cpuset == \
        CPUSet.parse("0-15")
    code, out, _ = cli.run("remove", "nope", *cli.node_args(state))
    assert code == 0 and "nothing to remove" in out


def test_rollback_when_memory_cannot_fit_after_cpus_did(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli.admit(pod("first", [("a", 2)]), state_dir=state)
    before = {name: (state / name).read_bytes() for name in ("cpu_manager_state", "memory_manager_state")}
    # 2 CPUs fit; 40Gi does not fit in 2 x 16Gi. The CPU manager allocates first, the memory
    # manager fails, the CPU manager is told to release.
    code, [result] = cli.admit(pod("big", [("a", 2)], budget=2, memory_gi=40), state_dir=state)
    assert code == 1 and result["admitted"] is False
    assert result["reason"] == "UnexpectedAdmissionError" and "[memorymanager]" in result["message"]
    assert {name: (state / name).read_bytes() for name in before} == before


def test_state_command(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli.admit(pod("p", [("a", 3), ("b", None)], budget=5), state_dir=state)
    before = (state / "cpu_manager_state").read_bytes()
    code, out, err = cli.run("state", *cli.node_args(state), "--output", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    [entry] = document["pods"]
    assert entry["pod"]["cpus"] == "1-5"
    assert {c["name"]: c["cpus"] for c in entry["containers"]} == {"a": "1-3", "b": "4-5"}
    assert document["free"]["shared_cpus"] == "0,6-15" and document["free"]["reserved_cpus"] == "0"
    assert document["free"]["allocatable_cpus"] == "6-15"
    node0 = next(m for m in document["free"]["memory"] if m["numa"] == 0 and m["resource"] == "memory")
    assert node0["reserved"] == 5 * GiB and node0["free"] == node0["allocatable"] - 5 * GiB
    code, table, _ = cli.run("state", *cli.node_args(state))
    assert code == 0 and "(pod)" in table and "allocatable 6-15" in table
    assert (state / "cpu_manager_state").read_bytes() == before


def test_trace_replays_and_tampering_is_caught(cli: Cli, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    path = write_pods(tmp_path, "two", pod("x", [("a", 2), ("b", None)], budget=3), pod("y", [("a", 1)]))
    code, _, _ = cli.run("admit", path, "--topology", cli.machine, "--trace", trace)
    assert code == 0
    code, out, _ = cli.run("replay", trace, "--check")
    assert code == 0 and "replayed identically" in out
    code, out, _ = cli.run("replay", trace, "--output", "json")
    assert code == 0 and [p["uid"] for p in json.loads(out)["pods"]] == ["x", "y"]
    lines = trace.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"type":"Allocated"' in line)
    lines[index] = lines[index].replace('"cpus":"1"', '"cpus":"7"', 1) if '"cpus":"1"' in lines[index] else \
        lines[index].replace('"provider":"cpu"', '"provider":"memory"', 1)
    trace.write_text("\n".join(lines) + "\n")
    code, out, _ = cli.run("replay", trace, "--check")
    seq = json.loads(lines[index])["seq"]
    assert code == 1 and f"replay differs at seq {seq}" in out and "expected:" in out and "got:" in out


def test_input_errors_exit_2_with_one_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
                   "  - name: a\n    resources: {limits: {cpu: lots}}\n")
    code, out, err = cli.run("admit", bad, "--topology", cli.machine)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and str(bad) in err and "spec.containers[0].resources.limits.cpu" in err
    code, _, err = cli.run("admit", tmp_path / "missing.yaml", "--topology", cli.machine)
    assert code == 2 and "missing.yaml: cannot read" in err
    config = tmp_path / "bad-config.yaml"
    config.write_text("topologyManagerPolicy: sometimes\n")
    code, _, err = cli.run("admit", write_pods(tmp_path, "ok", pod("p", [("a", 1)])), "--topology", cli.machine,
                           "--config", config)
    assert code == 2 and "bad-config.yaml" in err and "sometimes" in err
    code, _, err = cli.run("remove", "p", "--topology", cli.machine)
    assert code == 2 and "--state-dir" in err


def test_corrupt_state_file_is_a_runtime_failure(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli.admit(pod("p", [("a", 1)]), state_dir=state)
    (state / "cpu_manager_state").write_text('{"policyName":"static","defaultCpuSet":"0-15","checksum":1}')
    code, out, err = cli.run("admit", write_pods(tmp_path, "q", pod("q", [("a", 1)])), *cli.node_args(state))
    assert (code, out) == (3, "")
    assert err.count("\n") == 1 and str(state / "cpu_manager_state") in err and "please drain this node" in err


def test_socket_without_daemon_is_a_runtime_failure(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli.run("admit", write_pods(tmp_path, "q", pod("q", [("a", 1)])), "--socket",
                           tmp_path / "no.sock")
    assert code == 3 and "no.sock" in err


def test_real_subprocess(tmp_path: Path) -> None:
    machine = write_machine(tmp_path)
    pods = write_pods(tmp_path, "sub", pod("p", [("a", 3), ("b", None), ("c", None)], budget=5))
    done = subprocess.run(
        [sys.executable, "-m", "shim", "admit", str(pods), "--topology", str(machine), "--output", "json"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    [result] = json.loads(done.stdout)["pods"]
    assert containers(result) == {"a": ("1-3", *EXCLUSIVE), "b": ("4-5", *POD_SHARED), "c": ("4-5", *POD_SHARED)}
    assert set(result) >= {"uid", "name", "admitted", "reason", "message", "hint", "pod", "containers"}
