"""``podshim serve`` as a process: refusing a corrupt state file, ``--reset-state`` moving files
aside, SIGTERM in the middle of a stream of admissions leaving state that a restart accepts,
SIGKILL at arbitrary points of such a stream losing nothing that was answered, a pod whose
``--pod-dir`` file was deleted while the daemon was down released at restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from daemon_world import KUBELET_CONFIG, node_config, node_topology

from shim.actors.stores import FileCheckpointStore
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet
from shim.frontends.client import Client, DaemonError
from shim.runtime.node import build_actors
from shim.topology.jsonfile import dumps_topology

CORRUPT = '{"policyName":"static","defaultCpuSet":"0-7","checksum":1}'


def serve_command(tmp_path: Path, *extra: str) -> list[str]:
    config, topology = tmp_path / "kubelet.yaml", tmp_path / "topology.json"
    config.write_text(KUBELET_CONFIG)
    topology.write_text(dumps_topology(node_topology()))
    return [sys.executable, "-m", "shim", "serve", "--config", str(config), "--topology", str(topology),
            "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "d.sock"), *extra]


def start(command: list[str], sock: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with Client(str(sock), timeout=10) as client:
                client.health()
            return process
        except DaemonError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("daemon did not start")


def pod(uid: str, cpu: str) -> dict[str, object]:
    return {"metadata": {"uid": uid, "name": uid}, "spec": {"containers": [
        {"name": "app", "resources": {"limits": {"cpu": cpu, "memory": "64Mi"}}}]}}


def test_corrupt_state_refuses_to_start_and_reset_moves_it_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "cpu_manager_state").write_text(CORRUPT)
    command = serve_command(tmp_path)
    done = subprocess.run(command, capture_output=True, timeout=120)
    assert done.returncode == 3
    stderr = done.stderr.decode()
    assert "could not restore state from checkpoint: checkpoint is corrupted" in stderr
    assert f'"{state / "cpu_manager_state"}"' in stderr
    assert (state / "cpu_manager_state").read_text() == CORRUPT  # untouched

    process = start([*command, "--reset-state"], tmp_path / "d.sock")
    try:
        with Client(str(tmp_path / "d.sock"), timeout=30) as client:
            assert client.admit([pod("a", "2")])["pods"][0]["admitted"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    aside = sorted(state.glob("cpu_manager_state.bad-*"))
    assert len(aside) == 1 and aside[0].read_text() == CORRUPT
    assert '"a"' in (state / "cpu_manager_state").read_text()
    events = [json.loads(line) for line in process.stderr.read().decode().splitlines()  # type: ignore[union-attr]
              if line.startswith("{")]
    assert {"event": "reset_state", "moved": str(state / "cpu_manager_state"), "to": str(aside[0])} in [
        {k: e[k] for k in ("event", "moved", "to")} for e in events if e.get("event") == "reset_state"]


def test_corrupt_registry_refuses_to_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "podshim_containers.json").write_text("{not json")
    done = subprocess.run(serve_command(tmp_path), capture_output=True, timeout=120)
    assert done.returncode == 3
    assert f"{state / 'podshim_containers.json'}: corrupt registry" in done.stderr.decode()


def checked_cpu_state(state_dir: Path) -> CPUState:
    """The CPU state the files hold, after they decode and pass the policies' start() validation
    on the same machine, with exclusive CPUs disjoint and outside the shared pool."""
    actors = build_actors(node_config(), node_topology(), FileCheckpointStore(state_dir), state_dir=str(state_dir))
    state = actors.cpu_manager.state
    union = CPUSet()
    for containers in state.assignments.values():
        for cpus in containers.values():
            assert not (union & cpus)
            union = union | cpus
    assert not (union & state.default_cpuset)
    assert union | state.default_cpuset == CPUSet.parse("0-7")
    return state


def state_after_restart(command: list[str], sock: Path) -> dict[str, Any]:
    """Start the daemon again, read its State, stop it with SIGTERM (which must succeed)."""
    process = start(command, sock)
    try:
        with Client(str(sock), timeout=30) as client:
            restored: dict[str, Any] = client.state()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return restored


def test_sigterm_mid_stream_leaves_consistent_state(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    command = serve_command(tmp_path)
    process = start(command, sock)
    answered: list[bool] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        try:
            with Client(str(sock), timeout=30) as client:
                for i in range(1000):
                    if stop.is_set():
                        return
                    uid = f"w{worker}-{i}"
                    client.admit([pod(uid, "1")])
                    answered.append(True)
                    if i % 2:
                        client.remove(uid)
        except DaemonError:
            return  # the daemon went away mid-request: expected

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(answered) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        if process.poll() is None:
            process.kill()
    assert len(answered) >= 40
    state = checked_cpu_state(tmp_path / "state")
    registry = json.loads((tmp_path / "state" / "podshim_containers.json").read_text())
    assert set(registry["pods"]) == set(state.assignments)

    # A restart restores exactly that state.
    restored = state_after_restart(command, sock)
    assert {p["uid"] for p in restored["pods"]} == set(state.assignments)
    assert restored["free"]["shared_cpus"] == str(state.default_cpuset)


def test_sigkill_mid_stream_loses_nothing_answered(tmp_path: Path) -> None:
    # Three rounds on the same state directory, each ended by SIGKILL after a different number
    # of answers: whatever the daemon answered (admitted, removed) must hold after the restart,
    # and the files must never be torn.
    sock = tmp_path / "d.sock"
    command = serve_command(tmp_path)
    live: dict[str, bool | None] = {}  # uid -> admitted (True), removed (False), removal unanswered (None)
    lock = threading.Lock()
    for round_number, answers in enumerate((15, 40, 70)):
        process = start(command, sock)
        answered = threading.Semaphore(0)
        stop = threading.Event()

        def stream(worker: int, round_number: int = round_number, answered: threading.Semaphore = answered,
                   stop: threading.Event = stop) -> None:
            try:
                with Client(str(sock), timeout=30) as client:
                    for i in range(1000):
                        if stop.is_set():
                            return
                        uid = f"r{round_number}-w{worker}-{i}"
                        result = client.admit([pod(uid, "1")])
                        if result["pods"][0]["admitted"]:
                            with lock:
                                live[uid] = True
                        answered.release()
                        if i % 2:
                            with lock:
                                live[uid] = None  # either way, if the answer never comes
                            client.remove(uid)
                            with lock:
                                live[uid] = False
            except DaemonError:
                return  # killed mid-request: that request was not answered

        threads = [threading.Thread(target=stream, args=(n,)) for n in range(3)]
        try:
            for thread in threads:
                thread.start()
            for _ in range(answers):
                assert answered.acquire(timeout=60)
            process.kill()
            process.wait(timeout=60)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            if process.poll() is None:
                process.kill()
        held = set(checked_cpu_state(tmp_path / "state").assignments)
        with lock:
            admitted = {uid for uid, up in live.items() if up is True}
            removed = {uid for uid, up in live.items() if up is False}
        assert admitted <= held, f"answered admissions lost: {sorted(admitted - held)}"
        # A restart accepts the files and keeps every answered admission (the registry was
        # written before each answer); a pod whose answer never came may be released as stale.
        restored = {p["uid"] for p in state_after_restart(command, sock)["pods"]}
        assert admitted <= restored, f"answered admissions lost at restart: {sorted(admitted - restored)}"
        assert not (removed & restored), f"answered removals undone at restart: {sorted(removed & restored)}"
        assert restored <= set(checked_cpu_state(tmp_path / "state").assignments)


def test_pod_file_deleted_while_down_is_released_at_restart(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    pods.mkdir()
    (pods / "gone.json").write_text(json.dumps(pod("gone", "2")))
    (pods / "stays.json").write_text(json.dumps(pod("stays", "3")))
    sock = tmp_path / "d.sock"
    command = serve_command(tmp_path, "--pod-dir", str(pods), "--pod-scan-interval", "0.05")

    def held_pods(expected: set[str]) -> set[str]:
        deadline = time.monotonic() + 60
        with Client(str(sock), timeout=30) as client:
            while True:
                held = {p["uid"] for p in client.state()["pods"]}
                if held == expected or time.monotonic() > deadline:
                    return held
                time.sleep(0.05)

    process = start(command, sock)
    try:
        assert held_pods({"gone", "stays"}) == {"gone", "stays"}  # the watcher admitted both files
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    (pods / "gone.json").unlink()

    process = start(command, sock)
    try:
        with Client(str(sock), timeout=30) as client:
            state = client.state()  # served only after the restore, which releases stale pods
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert [p["uid"] for p in state["pods"]] == ["stays"]
    stays = CPUSet.parse(state["pods"][0]["containers"][0]["cpus"])
    assert CPUSet.parse(state["free"]["shared_cpus"]) == CPUSet.parse("0-7") - stays
    events = [json.loads(line) for line in process.stderr.read().decode().splitlines()  # type: ignore[union-attr]
              if line.startswith("{")]
    released = [{k: e.get(k) for k in ("pod_uid", "container", "why")} for e in events
                if e.get("event") == "reconcile" and e.get("action") == "released"]
    assert released == [{"pod_uid": "gone", "container": None, "why": "not an active pod"}]
