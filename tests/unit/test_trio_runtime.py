"""The trio runtime: same deliveries as the sync bus, back-pressure, threads, crash and shutdown."""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from toy_actors import Crashing, Gate, Sink, ToyArbiter, ToyMemory, toy_actors, toy_pod, toy_state

from shim.actors.base import Envelope
from shim.actors.cgroup_writer import RecordingCgroupBackend
from shim.messages import (
    AdmitPod,
    Admitted,
    Applied,
    ApplyFailed,
    ContainerCreated,
    Message,
    Rejected,
    RemoveContainer,
    RemovePod,
)
from shim.runtime import ActorError, Bus, BusError, Delivery, Recorder, TraceHeader, parse_trace, replay
from shim.runtime.trio_runtime import Blocking, RuntimeStopped, TrioRuntime, blocking

INPUTS: list[Message] = [
    AdmitPod(pod=toy_pod("a", 2, containers=2)),
    AdmitPod(pod=toy_pod("big", 9)),
    ContainerCreated(pod_uid="a", container="c0", cgroup="/kubepods/poda/c0", pid=42),
    ContainerCreated(pod_uid="a", container="c1", cgroup="/fail"),
    ContainerCreated(pod_uid="nobody", container="x", cgroup="/x"),
    AdmitPod(pod=toy_pod("b", 1, pod_level=True)),
    RemovePod(pod_uid="a"),
    AdmitPod(pod=toy_pod("c", 4)),
]


def bus_deliveries(inputs: list[Message]) -> list[list[Delivery]]:
    bus = Bus(toy_actors())
    out = []
    for message in inputs:
        bus.send(Envelope(to="arbiter", message=message))
        out.append(bus.run_until_idle())
    return out


async def runner(runtime: TrioRuntime, errors: list[BaseException], *,
                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    try:
        await runtime.run(task_status=task_status)
    except ActorError as err:
        errors.append(err)


async def test_deliveries_equal_the_sync_bus() -> None:
    expected = bus_deliveries(INPUTS)
    runtime = TrioRuntime(toy_actors(), blocking_names=["cgroup-writer"])
    got = []
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        for message in INPUTS:
            outcome = await runtime.submit(Envelope(to="arbiter", message=message))
            got.append(outcome.deliveries)
        runtime.close()
    assert got == expected
    assert sum(len(d) for d in got) > 30  # real traffic, not a trivial comparison
    assert runtime.inputs_handled == len(INPUTS)


async def test_trace_of_the_trio_runtime_replays_on_the_bus() -> None:
    recorder = Recorder(TraceHeader())
    runtime = TrioRuntime(toy_actors(), taps=[recorder], blocking_names=["cgroup-writer"])
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        for message in INPUTS:
            await runtime.submit(Envelope(to="arbiter", message=message))
        runtime.close()
    trace = parse_trace(recorder.text())
    assert len(trace.deliveries) == runtime.next_seq - 1
    result = replay(trace, lambda header: toy_actors())
    assert result.ok, result.mismatch and result.mismatch.describe()
    assert result.delivered == len(trace.deliveries)

    # A tampered trace is caught: the replay really compares.
    tampered = recorder.text().replace('"cpus":"1-2"', '"cpus":"1,3"', 1)
    assert tampered != recorder.text()
    assert not replay(parse_trace(tampered), lambda header: toy_actors()).ok


async def test_request_returns_the_outcome_for_its_pod_and_publishes_state() -> None:
    actors = toy_actors(cpus=4)
    runtime = TrioRuntime(actors, snapshot=lambda: toy_state(actors))
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        assert runtime.snapshot == {"free": [1, 2, 3], "pods": {}}
        admitted = await runtime.request(AdmitPod(pod=toy_pod("a", 2)), (Admitted, Rejected))
        assert isinstance(admitted, Admitted)
        assert admitted.pod_uid == "a" and admitted.containers[0].cpus == "1-2"
        assert runtime.snapshot == {"free": [3], "pods": {"a": [1, 2]}}
        rejected = await runtime.request(AdmitPod(pod=toy_pod("b", 2)), (Admitted, Rejected))
        assert isinstance(rejected, Rejected)
        assert rejected.message == "not enough cpus available to satisfy request: requested=2, available=1"
        applied = await runtime.request(
            ContainerCreated(pod_uid="a", container="c0", cgroup="/ok"), (Applied, ApplyFailed))
        assert applied == Applied(pod_uid="a", container="c0", cgroup="/ok")
        failed = await runtime.request(
            ContainerCreated(pod_uid="a", container="c0", cgroup="/fail"), (Applied, ApplyFailed))
        assert isinstance(failed, ApplyFailed) and failed.errno == 28
        unmanaged = await runtime.request(
            ContainerCreated(pod_uid="zz", container="c0", cgroup="/ok"), (Applied, ApplyFailed))
        assert unmanaged is None
        runtime.close()


async def test_unknown_destination_is_refused_without_stopping() -> None:
    runtime = TrioRuntime(toy_actors())
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        with pytest.raises(BusError, match="no actor named 'nowhere'"):
            await runtime.submit(Envelope(to="nowhere", message=RemovePod(pod_uid="a")))
        assert isinstance(await runtime.request(AdmitPod(pod=toy_pod("a")), (Admitted,)), Admitted)
        runtime.close()


def test_duplicate_actor_names_are_refused() -> None:
    with pytest.raises(BusError, match="already taken"):
        TrioRuntime([Sink(), Sink()])


def test_blocking_declarations() -> None:
    gate = Gate()
    wrapped = blocking(ToyMemory())
    assert blocking(wrapped) is wrapped and isinstance(wrapped, Blocking)
    runtime = TrioRuntime([gate, wrapped, ToyArbiter(), Sink()], blocking_names=["sink"])
    assert runtime.runs_in_thread("gate") and runtime.runs_in_thread("memory") and runtime.runs_in_thread("sink")
    assert not runtime.runs_in_thread("arbiter")


class ThreadNoting:
    """Notes the thread each message type was handled in; only RemovePod is declared blocking."""

    name = "noting"
    blocking_messages = (RemovePod,)

    def __init__(self) -> None:
        self.threads: dict[str, int] = {}

    def handle(self, message: Message) -> list[Envelope]:
        self.threads[type(message).__name__] = threading.get_ident()
        return []


async def test_only_the_declared_blocking_messages_go_to_a_thread() -> None:
    noting = ThreadNoting()
    runtime = TrioRuntime([noting], blocking_names=["noting"])
    assert runtime.runs_in_thread("noting", RemovePod(pod_uid="a"))
    assert not runtime.runs_in_thread("noting", RemoveContainer(pod_uid="a", container="c"))
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await runtime.submit(Envelope(to="noting", message=RemovePod(pod_uid="a")))
        await runtime.submit(Envelope(to="noting", message=RemoveContainer(pod_uid="a", container="c")))
        runtime.close()
    loop = threading.get_ident()
    assert noting.threads["RemoveContainer"] == loop and noting.threads["RemovePod"] != loop


async def wait_for(event: threading.Event) -> None:
    await trio.to_thread.run_sync(event.wait, 10)


async def test_back_pressure_bounds_the_input_queue_and_blocking_actors_run_in_threads() -> None:
    gate = Gate()
    runtime = TrioRuntime([gate], input_size=1)
    done: list[str] = []

    async def admit(uid: str) -> None:
        await runtime.submit(Envelope(to="gate", message=RemovePod(pod_uid=uid)))
        done.append(uid)

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        for i in range(5):
            nursery.start_soon(admit, f"p{i}")
        await wait_for(gate.entered)
        await trio.testing.wait_all_tasks_blocked()
        stats = runtime.input_statistics()
        # one input in the actor, one buffered, three callers held back by the full channel
        assert (stats.current_buffer_used, stats.max_buffer_size, stats.tasks_waiting_send) == (1, 1, 3)
        assert done == []
        gate.release.set()
        while len(done) < 5:
            await trio.sleep(0.01)
        runtime.close()
    assert sorted(gate.handled) == [f"p{i}" for i in range(5)]
    assert threading.get_ident() not in gate.threads


async def test_reads_do_not_wait_for_an_admission_in_progress() -> None:
    gate = Gate()
    runtime = TrioRuntime([gate], snapshot=lambda: list(gate.handled))
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        nursery.start_soon(runtime.submit, Envelope(to="gate", message=RemovePod(pod_uid="a")))
        await wait_for(gate.entered)
        assert runtime.admission_lock.locked()
        assert runtime.snapshot == []  # the last published state, immediately
        gate.release.set()
        runtime.close()
    assert runtime.snapshot == ["a"]


async def test_crashing_actor_stops_the_runtime_with_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    runtime = TrioRuntime([ToyArbiter(), Crashing(), ToyMemory(), sink])
    errors: list[BaseException] = []
    stopped: list[BaseException] = []

    async def bad() -> None:
        try:
            await runtime.request(AdmitPod(pod=toy_pod("bad")), (Admitted, Rejected))
        except RuntimeStopped as err:
            stopped.append(err)

    with caplog.at_level(logging.CRITICAL, logger="podshim.runtime"):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner, runtime, errors)
            assert isinstance(await runtime.request(AdmitPod(pod=toy_pod("good")), (Admitted,)), Admitted)
            nursery.start_soon(bad)
    assert len(errors) == 1 and isinstance(errors[0], ActorError)
    error = errors[0]
    assert error.actor == "cpu" and isinstance(error.error, ValueError)
    assert "actor 'cpu' failed on HintsRequest from 'arbiter'" in str(error) and "boom" in str(error)
    assert runtime.failure is error
    assert len(stopped) == 1 and "actor 'cpu' failed" in str(stopped[0])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(lines) == 1 and lines[0].startswith("podshim runtime stopped: actor 'cpu' failed on HintsRequest")
    assert "\n" not in lines[0]
    with pytest.raises(RuntimeStopped):
        await runtime.request(AdmitPod(pod=toy_pod("late")), (Admitted,))
    assert sink.received == []


async def test_runaway_message_loop_is_stopped() -> None:
    class PingPong:
        def __init__(self, name: str, other: str) -> None:
            self.name, self.other = name, other

        def handle(self, message: Message) -> list[Envelope]:
            return [Envelope(to=self.other, message=message)]

    runtime = TrioRuntime([PingPong("arbiter", "b"), PingPong("b", "arbiter")], limit=50)
    with pytest.RaisesGroup(pytest.RaisesExc(BusError, match="still busy after 50 deliveries")):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            with pytest.raises(RuntimeStopped):
                await runtime.submit(Envelope(to="arbiter", message=RemovePod(pod_uid="x")))


async def test_shutdown_finishes_the_input_in_progress_and_refuses_the_rest() -> None:
    gate = Gate()
    runtime = TrioRuntime([gate], input_size=4)
    results: dict[str, str] = {}

    async def send(uid: str) -> None:
        try:
            await runtime.submit(Envelope(to="gate", message=RemovePod(pod_uid=uid)))
            results[uid] = "done"
        except RuntimeStopped:
            results[uid] = "refused"

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        nursery.start_soon(send, "first")
        await wait_for(gate.entered)
        nursery.start_soon(send, "second")
        nursery.start_soon(send, "third")
        await trio.testing.wait_all_tasks_blocked()
        runtime.close()
        with pytest.raises(RuntimeStopped):
            await runtime.submit(Envelope(to="gate", message=RemovePod(pod_uid="late")))
        gate.release.set()
    assert results == {"first": "done", "second": "refused", "third": "refused"}
    assert gate.handled == ["first"]
    assert runtime.stopped.is_set()


async def test_shutdown_deadline_with_autojump_clock(autojump_clock: trio.testing.MockClock) -> None:
    # A timer-driven input source stops cleanly when the runtime closes, in virtual time.
    actors = toy_actors()
    runtime = TrioRuntime(actors)
    ticks = 0
    admitted: list[str] = []

    async def ticker() -> None:
        nonlocal ticks
        try:
            while True:
                await trio.sleep(10)
                reply = await runtime.request(AdmitPod(pod=toy_pod(f"t{ticks}")), (Admitted,))
                admitted.append(getattr(reply, "pod_uid", ""))
                ticks += 1
        except RuntimeStopped:
            return

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        nursery.start_soon(ticker)
        await trio.sleep(35)
        runtime.close()
    assert ticks == 3
    assert trio.current_time() == pytest.approx(35, abs=10)
    assert admitted == ["t0", "t1", "t2"]


def test_recorder_sink_stream() -> None:
    # A daemon trace goes to a file as it happens; the Recorder used is the bus's own.
    stream = io.StringIO()
    recorder = Recorder(TraceHeader(), stream)

    async def main() -> None:
        runtime = TrioRuntime(toy_actors(backend=RecordingCgroupBackend()), taps=[recorder])
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            await runtime.request(AdmitPod(pod=toy_pod("a")), (Admitted,))
            runtime.close()

    trio.run(main)
    trace = parse_trace(stream.getvalue())
    assert [d.seq for d in trace.deliveries] == list(range(1, len(trace.deliveries) + 1))
    assert trace.deliveries[0].sender == "external" and isinstance(trace.deliveries[0].msg, AdmitPod)


def _node_runtime(tmp_path: Path) -> tuple[Any, Any, TrioRuntime]:
    """The real actors over a file store in ``tmp_path``, declared as ``podshim serve`` does."""
    from shim.actors.stores import FileCheckpointStore
    from shim.config import default_config
    from shim.runtime.node import build_actors
    from shim.topology.generate import generate

    store = FileCheckpointStore(tmp_path)
    actors = build_actors(default_config(), generate(sockets=1, cores_per_socket=4), store)
    return store, actors, TrioRuntime(actors.all(), blocking_names=[actors.cgroups.name], batch=store)


def _noting_writes(monkeypatch: pytest.MonkeyPatch, store: Any) -> list[tuple[str, int]]:
    """Record (file name, thread) of every checkpoint file the store writes."""
    written: list[tuple[str, int]] = []
    real = type(store)._write

    def noting(self: Any, name: str, text: str) -> None:
        written.append((name, threading.get_ident()))
        real(self, name, text)

    monkeypatch.setattr(type(store), "_write", noting)
    return written


async def test_the_node_providers_compute_on_the_loop_and_each_input_writes_in_one_thread_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shim.actors import stores
    from shim.messages import Commit, Release
    from shim.pod import Pod

    store, actors, runtime = _node_runtime(tmp_path)
    for name in (actors.cpu.name, actors.memory.name):
        assert not runtime.runs_in_thread(name, Commit(pod_uid="p"))
        assert not runtime.runs_in_thread(name, Release(pod_uid="p"))
    written = _noting_writes(monkeypatch, store)
    synced: list[str] = []
    monkeypatch.setattr(stores, "_fsync_directory", lambda directory: synced.append(str(directory)))
    guaranteed = Pod.from_dict({"metadata": {"name": "g", "uid": "g"}, "spec": {"containers": [
        {"name": "c", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}})
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        outcome = await runtime.request(AdmitPod(pod=guaranteed), (Admitted, Rejected))
        assert isinstance(outcome, Admitted)
        # both state files, written by one worker thread, then one directory fsync; all of it
        # before the outcome came back
        assert sorted(name for name, _ in written) == ["cpu_manager_state", "memory_manager_state"]
        assert len({thread for _, thread in written}) == 1 and written[0][1] != threading.get_ident()
        assert synced == [str(tmp_path)]
        assert "g" in (tmp_path / "cpu_manager_state").read_text()
        # a decision that changes no state writes nothing and syncs nothing
        del written[:], synced[:]
        await runtime.request(RemovePod(pod_uid="nobody"))
        assert written == [] and synced == []
        await runtime.request(RemovePod(pod_uid="g"))
        assert sorted(name for name, _ in written) == ["cpu_manager_state", "memory_manager_state"]
        assert synced == [str(tmp_path)]
        runtime.close()
    assert '"g"' not in (tmp_path / "cpu_manager_state").read_text()


class SaveThenAct:
    """On loop: saves a checkpoint, then asks the threaded ``Checker`` to act (as a provider's
    commit precedes a cgroup write)."""

    name = "saver"

    def __init__(self, store: Any) -> None:
        self.store = store

    def handle(self, message: Message) -> list[Envelope]:
        if isinstance(message, RemovePod):
            self.store.save("a_state", message.pod_uid)
            return [Envelope(to="checker", message=message)]
        return []


class Checker:
    """Threaded: notes what the state file on disk holds when it acts."""

    name = "checker"
    blocking = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[str | None] = []

    def handle(self, message: Message) -> list[Envelope]:
        self.seen.append(self.path.read_text() if self.path.exists() else None)
        return []


async def test_held_checkpoints_are_written_before_a_threaded_actor_acts(tmp_path: Path) -> None:
    from shim.actors.stores import FileCheckpointStore

    store = FileCheckpointStore(tmp_path)
    checker = Checker(tmp_path / "a_state")
    runtime = TrioRuntime([SaveThenAct(store), checker], batch=store)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="first")))
        await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="second")))
        runtime.close()
    assert checker.seen == ["first", "second"]


class Raiser:
    """Fails on every message."""

    name = "checker"

    def handle(self, message: Message) -> list[Envelope]:
        raise RuntimeError("boom")


async def test_an_input_that_fails_writes_nothing_it_held(tmp_path: Path) -> None:
    from shim.actors.stores import FileCheckpointStore

    store = FileCheckpointStore(tmp_path)
    runtime = TrioRuntime([SaveThenAct(store), Raiser()], batch=store)
    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(runner, runtime, errors)
        with pytest.raises(RuntimeStopped):
            await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="first")))
    assert errors and "boom" in str(errors[0])
    # the saver's checkpoint was held for the input, which failed: all or nothing
    assert not (tmp_path / "a_state").exists() and not store.holding
    store.save("a_state", "later")  # the store writes at once again
    assert (tmp_path / "a_state").read_text() == "later"


async def test_a_failed_checkpoint_write_stops_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from shim.actors.stores import FileCheckpointStore

    store = FileCheckpointStore(tmp_path)

    def full(self: Any, name: str, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / name))

    monkeypatch.setattr(FileCheckpointStore, "_write", full)
    runtime = TrioRuntime([TwoFileSaver(store, threaded=False)], batch=store)
    caught: list[BaseException] = []
    with caplog.at_level(logging.CRITICAL, logger="podshim.runtime"):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                try:
                    await runtime.run()
                except BusError as err:
                    caught.append(err)

            nursery.start_soon(run)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(RuntimeStopped, match="writing the checkpoints failed"):
                await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="p")))
    assert caught and "No space left on device" in str(caught[0]) and "a_state" in str(caught[0])
    assert "writing the checkpoints failed" in caplog.text
    assert runtime.stopped.is_set()


class TwoFileSaver:
    """Writes two checkpoints through ``store`` for every message (as both providers do when
    a decision commits)."""

    name = "saver"

    def __init__(self, store: Any, *, threaded: bool = True) -> None:
        self.store = store
        self.blocking = threaded

    def handle(self, message: Message) -> list[Envelope]:
        self.store.save("a_state", "1")
        self.store.save("b_state", "2")
        return []


@pytest.mark.parametrize("batched", [True, False])
async def test_one_directory_fsync_per_input_before_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    from shim.actors import stores

    synced: list[str] = []
    real = stores._fsync_directory

    def counting(directory: Path) -> None:
        synced.append(str(directory))
        real(directory)

    monkeypatch.setattr(stores, "_fsync_directory", counting)
    store = stores.FileCheckpointStore(tmp_path)
    runtime = TrioRuntime([TwoFileSaver(store)], batch=store if batched else None)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="p")))
        assert synced == [str(tmp_path)] * (1 if batched else 2)  # done when the input's outcome is
        await runtime.submit(Envelope(to="saver", message=RemovePod(pod_uid="q")))
        assert len(synced) == (2 if batched else 4)
        runtime.close()
    assert (tmp_path / "a_state").read_text() == "1" and (tmp_path / "b_state").read_text() == "2"
