"""The daemon on a real Unix socket: in-process with toy actors, and ``podshim serve`` as a
subprocess with the real actors (its trace then replays on the sync bus)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import trio
from shared_paths import SYSFS_FIXTURES

from shim.frontends.client import Client, DaemonError, RequestFailed
from shim.frontends.metrics import Metrics
from shim.frontends.protocol import Error, HookEvent, Ok
from shim.frontends.server import Daemon, bind_unix_socket, run_daemon
from shim.runtime import ActorError
from shim.runtime.trio_runtime import TrioRuntime

# The toy actors live beside the unit tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from toy_actors import Crashing, Sink, ToyArbiter, ToyMemory, toy_actors, toy_pod, toy_state


class Running:
    def __init__(self, daemon: Daemon, path: str) -> None:
        self.daemon = daemon
        self.path = path

    async def call(self, fn, *args):  # type: ignore[no-untyped-def]
        return await trio.to_thread.run_sync(fn, *args)

    def client(self) -> Client:
        return Client(self.path, timeout=20)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    actors = toy_actors(cpus=8)
    runtime = TrioRuntime(actors, snapshot=lambda: toy_state(actors), blocking_names=["cgroup-writer"])
    daemon = Daemon(runtime, metrics=Metrics(), max_frame=4096, writer="cgroup-writer")
    path = str(tmp_path / "podshim.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_daemon(daemon, path, handle_signals=False,
                                                           task_status=task_status))
        yield Running(daemon, path)
        daemon.shutdown()


def raw_exchange(path: str, data: bytes) -> tuple[bytes, bool]:
    """Send bytes, read until the daemon closes or 1 s of silence; (bytes read, closed?)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        sock.connect(path)
        sock.sendall(data)
        got = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return got, True
                got += chunk
        except TimeoutError:
            return got, False


def error_of(data: bytes) -> Error:
    (length,) = struct.unpack(">I", data[:4])
    response = msgspec.msgpack.decode(data[4 : 4 + length], type=Error | Ok)
    assert isinstance(response, Error)
    return response


async def test_socket_mode_and_basic_requests(running: Running) -> None:
    assert stat.S_IMODE(os.stat(running.path).st_mode) == 0o600
    with running.client() as client:
        health = await running.call(client.health)
        assert health["status"] == "ok"
        answer = await running.call(client.admit, [toy_pod("a", 2), toy_pod("big", 20)])
        assert [(p["uid"], p["admitted"]) for p in answer["pods"]] == [("a", True), ("big", False)]
        assert answer["pods"][0]["containers"][0]["cpus"] == "1-2"
        assert answer["pods"][1]["message"].startswith("not enough cpus")
        assert await running.call(client.state) == {"free": [3, 4, 5, 6, 7], "pods": {"a": [1, 2]}}
        await running.call(client.remove, "a")
        assert (await running.call(client.state))["pods"] == {}
    metrics = running.daemon.metrics
    assert metrics is not None and metrics.value("podshim_topology_manager_admission_requests_total") == 2


async def test_hook_events(running: Running) -> None:
    with running.client() as client:
        await running.call(client.admit, [toy_pod("h", 1)])
        ok = await running.call(client.hook, HookEvent(stage="createRuntime", pod_uid="h", container="c0",
                                                      cgroup="/kubepods/podh/c0", pid=1))
        assert ok == {"action": "pinned", "pod_uid": "h", "container": "c0", "cgroup": "/kubepods/podh/c0",
                      "cpus": "1", "mems": "0", "isolation": "container", "cpu_quota": "unlimited"}
        with pytest.raises(RequestFailed, match=r"apply_failed: /fail/cpuset.cpus: .*\(errno 28\)"):
            await running.call(client.hook, HookEvent(stage="createRuntime", cgroup="/fail", annotations={
                "io.kubernetes.cri.sandbox-uid": "h", "io.kubernetes.cri.container-name": "c0"}))
        sandbox = HookEvent(stage="createRuntime", state={"annotations": {
            "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-uid": "h"}})
        assert (await running.call(client.hook, sandbox))["action"] == "skipped"
        unmanaged = HookEvent(stage="createRuntime", pod_uid="zz", container="c", cgroup="/x")
        assert (await running.call(client.hook, unmanaged)) == {"action": "skipped",
                                                               "detail": "pod zz is not known to podshim"}
        stopped = await running.call(client.hook, HookEvent(stage="poststop", pod_uid="h", container="c0"))
        assert stopped == {"action": "released", "pod_uid": "h", "container": "c0"}


async def test_malformed_oversized_and_unknown_frames(running: Running) -> None:
    data, closed = await running.call(raw_exchange, running.path, b"\x00\x00\x00\x01\xc1")
    assert closed and error_of(data).code == "bad_frame"

    data, closed = await running.call(raw_exchange, running.path, struct.pack(">I", 5000) + b"x" * 10)
    assert closed and error_of(data).code == "too_large"
    assert "5000 bytes is over the 4096-byte limit" in error_of(data).message

    data, closed = await running.call(raw_exchange, running.path, b"{" + b" " * 5000)
    assert closed and json.loads(data)["code"] == "too_large"

    # A well-framed but unknown request: an error, and the connection keeps serving.
    unknown = msgspec.msgpack.encode({"type": "Launch"})
    health = msgspec.msgpack.encode({"type": "Health"})
    stream = struct.pack(">I", len(unknown)) + unknown + struct.pack(">I", len(health)) + health
    data, closed = await running.call(raw_exchange, running.path, stream)
    assert not closed
    first = error_of(data)
    assert first.code == "bad_request" and "Launch" in first.message
    (length,) = struct.unpack(">I", data[:4])
    rest = data[4 + length :]
    second = msgspec.msgpack.decode(rest[4:], type=Ok | Error)
    assert isinstance(second, Ok) and second.result["status"] == "ok"

    # Tiny clients: a JSON line in, a JSON line out.
    data, closed = await running.call(raw_exchange, running.path, b'{"type": "Health"}\n')
    assert not closed and data.endswith(b"\n") and json.loads(data)["result"]["status"] == "ok"

    # The daemon still serves everyone after all that.
    with running.client() as client:
        assert (await running.call(client.health))["status"] == "ok"


async def test_many_concurrent_clients_are_all_answered(running: Running) -> None:
    results: dict[str, bool] = {}

    def one(uid: str) -> None:
        with running.client() as client:
            answer = client.admit([toy_pod(uid, 1)])
            results[uid] = answer["pods"][0]["admitted"]
            assert client.health()["status"] == "ok"

    async with trio.open_nursery() as nursery:
        for i in range(24):
            nursery.start_soon(trio.to_thread.run_sync, one, f"p{i:02}")
    assert len(results) == 24
    assert sum(results.values()) == 7  # CPUs 1..7, one per pod, whatever the arrival order
    with running.client() as client:
        state = await running.call(client.state)
    assert state["free"] == [] and len(state["pods"]) == 7


async def test_peer_uid_check(running: Running) -> None:
    running.daemon.allowed_uids = {424242}
    with running.client() as client, pytest.raises(RequestFailed, match=f"forbidden: uid {os.geteuid()} is not "):
        await running.call(client.health)


async def test_shutdown_removes_the_socket(tmp_path: Path) -> None:
    daemon = Daemon(TrioRuntime(toy_actors()))
    path = str(tmp_path / "s.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_daemon(daemon, path, handle_signals=False,
                                                           task_status=task_status))
        assert os.path.exists(path)
        daemon.shutdown()
    assert not os.path.exists(path)
    with pytest.raises(DaemonError, match=f"podshim daemon not reachable at {path}: "):
        Client(path)


async def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    sock = await bind_unix_socket(path)
    try:
        from shim.frontends.cli import RuntimeFailure

        with pytest.raises(RuntimeFailure, match="another daemon is listening"):
            await bind_unix_socket(path)
    finally:
        sock.close()
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(Exception, match="not a socket"):
        await bind_unix_socket(str(regular))


async def test_actor_crash_stops_the_daemon(tmp_path: Path) -> None:
    daemon = Daemon(TrioRuntime([ToyArbiter(), Crashing(), ToyMemory(), Sink()]))
    path = str(tmp_path / "s.sock")
    replies: list[object] = []

    def ask() -> None:
        with Client(path, timeout=20) as client:
            try:
                replies.append(client.admit([toy_pod("bad")]))
            except DaemonError as err:
                replies.append(err)

    # run_daemon raises the ActorError itself; the test's own nursery wraps it in a group.
    with pytest.RaisesGroup(pytest.RaisesExc(ActorError, match="actor 'cpu' failed on HintsRequest")):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_daemon(daemon, path, handle_signals=False,
                                                               task_status=task_status))
            await trio.to_thread.run_sync(ask)
    assert len(replies) == 1 and isinstance(replies[0], DaemonError)


# --- podshim serve, the real thing -------------------------------------------------------------


def wait_for_socket(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited: {process.stderr.read().decode() if process.stderr else ''}")
        if path.exists():
            try:
                with Client(str(path), timeout=10) as client:
                    client.health()
                return
            except DaemonError:
                pass
        time.sleep(0.05)
    raise AssertionError("daemon did not start")


def test_podshim_serve_subprocess_admits_and_its_trace_replays(tmp_path: Path) -> None:
    from shim.runtime import load_trace, replay
    from shim.runtime.node import actor_factory

    sock, state_dir, trace = tmp_path / "d.sock", tmp_path / "state", tmp_path / "trace.jsonl"
    fixture = SYSFS_FIXTURES / "16amd64-8n2c-cpusets"
    command = [sys.executable, "-m", "shim", "serve", "--state-dir", str(state_dir), "--socket", str(sock),
               "--sysfs-root", str(fixture), "--trace", str(trace)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_socket(sock, process)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        pod = {"metadata": {"name": "web", "uid": "w-1"}, "spec": {"containers": [
            {"name": "app", "resources": {"limits": {"cpu": "2", "memory": "256Mi"}}}]}}
        with Client(str(sock), timeout=30) as client:
            answer = client.admit([pod])
            state = client.state()
        result = answer["pods"][0]
        assert result["admitted"] is True, result
        assert result["containers"][0]["isolation"] == "container"
        assert "w-1" in json.dumps(state)
        assert (state_dir / "cpu_manager_state").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode() if process.stderr else ""
    decisions = [json.loads(line[len("podshim: "):]) if line.startswith("podshim: {") else json.loads(line)
                 for line in stderr.splitlines() if '"event":"admission"' in line]
    assert len(decisions) == 1 and decisions[0]["pod"]["uid"] == "w-1" and decisions[0]["outcome"] == "admitted"
    assert not sock.exists()
    result_replay = replay(load_trace(trace), actor_factory())
    assert result_replay.ok, result_replay.mismatch and result_replay.mismatch.describe()
    assert result_replay.delivered > 4
