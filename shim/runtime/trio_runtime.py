"""The daemon's runtime: the same actors as :mod:`shim.runtime.bus`, each one a trio task.

Every actor runs in its own task behind a bounded memory channel (its inbox), all of them owned
by the nursery of :meth:`TrioRuntime.run`. External inputs enter through :meth:`request`, which
puts them in a bounded input channel (a full channel makes callers wait: back-pressure, never an
unbounded queue) and waits for the input's outcome. One task takes the inputs one at a time,
under the admission lock, and runs each to quiescence exactly as :meth:`Bus.run_until_idle`
would: a FIFO of envelopes, one delivery at a time, the tap shown each delivery before the actor
handles it. So the deliveries, their sequence numbers and their order are those of the sync bus
for the same inputs, and a daemon trace replays with :mod:`shim.runtime.replay`.

Actors whose ``handle`` does blocking I/O (cgroup writes, sysfs walks) are declared blocking
(a ``blocking = True`` attribute, the :func:`blocking` wrapper, or by name) and run in
``trio.to_thread``, so the event loop keeps serving reads meanwhile. An actor that knows which of
its messages do the I/O names their types in a ``blocking_messages`` attribute; only those go to
a thread (a hop to a worker thread and back costs more than handling a hint request, and an
admission is a dozen deliveries). Checkpoints are the exception: the store given as ``batch``
holds every save of an input in memory, and the input's writes (each file atomically, then one
directory fsync) are done in one worker-thread job when the input has run to quiescence, before
its outcome is reported, so the providers compute on the loop and a decision that changes no
state does no I/O at all. Held writes are also flushed before any delivery that runs in a
thread: a cgroup is never written for a placement the state files do not hold yet. Reads never
take the admission lock: :attr:`TrioRuntime.snapshot` is refreshed after each input.

A failing actor stops the runtime: the error is logged as one line naming the actor, the
message and the sequence number, pending callers get :class:`RuntimeStopped`, and :meth:`run`
raises :class:`~shim.runtime.bus.ActorError`. Nothing keeps running half-alive.
:meth:`close` is the structured shutdown: the input in progress is finished, inputs still
queued are refused, then the actor tasks end.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from shim.actors.base import EXTERNAL, Actor, Envelope
from shim.messages import Message, message_type
from shim.runtime.bus import ActorError, BusError, Delivery, Tap

log = logging.getLogger("podshim.runtime")

DEFAULT_INBOX = 16
DEFAULT_INPUTS = 64
DEFAULT_LIMIT = 100_000

Match = Callable[[Message], bool]


class DirectoryBatch(Protocol):
    """A checkpoint store that can hold an input's saves and write them in one go, with one
    directory fsync (:class:`~shim.actors.stores.FileCheckpointStore`)."""

    def begin_batch(self, *, hold: bool = False) -> None: ...

    def end_batch(self) -> bool: ...

    @property
    def holding(self) -> bool: ...

    def flush(self) -> None: ...

    def drop_held(self) -> None: ...


class RuntimeStopped(RuntimeError):
    """The runtime is shutting down or has stopped; the input was not (or not fully) handled."""


class Blocking:
    """Wraps an actor whose ``handle`` blocks, so the runtime calls it in a worker thread."""

    blocking = True

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    @property
    def name(self) -> str:
        return self.actor.name

    def handle(self, message: Message) -> list[Envelope]:
        return self.actor.handle(message)


def blocking(actor: Actor) -> Blocking:
    """Declare ``actor`` blocking (its effects do I/O)."""
    return actor if isinstance(actor, Blocking) else Blocking(actor)


@dataclass
class Outcome:
    """What one external input led to: the first delivery accepted as its reply (if any) and
    every delivery it caused, its own first."""

    reply: Message | None = None
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass(eq=False)  # identity semantics: inputs live in a set
class _Input:
    envelope: Envelope
    accepts: Match
    done: trio.Event = field(default_factory=trio.Event)
    outcome: Outcome = field(default_factory=Outcome)
    error: BaseException | None = None


@dataclass
class _Cell:
    """An actor and the two channels between it and the dispatcher."""

    actor: Actor
    in_thread: bool
    # With in_thread: the message types handled in a thread (None: all of them).
    blocking_types: tuple[type, ...] | None
    inbox_send: trio.MemorySendChannel[Delivery]
    inbox_receive: trio.MemoryReceiveChannel[Delivery]
    reply_send: trio.MemorySendChannel[list[Envelope]]
    reply_receive: trio.MemoryReceiveChannel[list[Envelope]]

    def threaded(self, message: Message) -> bool:
        """Whether ``message`` is handled in a worker thread."""
        return self.in_thread and (self.blocking_types is None or isinstance(message, self.blocking_types))


def same_subject(request: Message) -> Match:
    """A reply concerns ``request`` when it names the same pod (and container) where both
    messages name one."""

    def check(reply: Message) -> bool:
        for attribute in ("pod_uid", "container"):
            wanted, got = getattr(request, attribute, None), getattr(reply, attribute, None)
            if wanted is not None and got is not None and wanted != got:
                return False
        return True

    return check


class TrioRuntime:
    """Actors as trio tasks; see the module docstring for the guarantees.

    ``taps`` see every delivery in order (the trace :class:`~shim.runtime.recorder.Recorder`,
    metrics); ``blocking_names`` names actors to run in threads in addition to those declaring
    themselves blocking; ``batch`` is the store the actors write checkpoints to: its saves are
    held during each input and written in a worker thread at the end, with one directory fsync
    (see the module docstring); ``snapshot`` is called after each input
    (and at start) and its result is what :attr:`snapshot` returns to readers; ``limit`` bounds
    the deliveries of one input.
    """

    def __init__(
        self,
        actors: Iterable[Actor],
        *,
        taps: Sequence[Tap] = (),
        blocking_names: Iterable[str] = (),
        snapshot: Callable[[], Any] | None = None,
        inbox_size: int = DEFAULT_INBOX,
        input_size: int = DEFAULT_INPUTS,
        limit: int = DEFAULT_LIMIT,
        batch: DirectoryBatch | None = None,
    ) -> None:
        threaded = set(blocking_names)
        self._batch = batch
        self._cells: dict[str, _Cell] = {}
        for actor in actors:
            if actor.name in self._cells or actor.name == EXTERNAL:
                raise BusError(f"actor name {actor.name!r} is already taken")
            inbox_send, inbox_receive = trio.open_memory_channel[Delivery](inbox_size)
            reply_send, reply_receive = trio.open_memory_channel[list[Envelope]](inbox_size)
            in_thread = bool(getattr(actor, "blocking", False)) or actor.name in threaded
            declared = getattr(actor, "blocking_messages", None)
            blocking_types = None if declared is None else tuple(declared)
            self._cells[actor.name] = _Cell(actor, in_thread, blocking_types, inbox_send, inbox_receive,
                                            reply_send, reply_receive)
        self.taps = tuple(taps)
        self._snapshot_fn = snapshot
        self.snapshot: Any = None
        self._limit = limit
        self._input_send, self._input_receive = trio.open_memory_channel[_Input](input_size)
        self.admission_lock = trio.Lock()
        self._seq = 0
        self._started = False
        self._closing = False
        self._queued: set[_Input] = set()  # inputs accepted and not yet finished
        self.stopped = trio.Event()
        self.inputs_handled = 0
        self.failure: ActorError | BusError | None = None

    # --- introspection --------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._cells)

    def actor(self, name: str) -> Actor:
        cell = self._cells.get(name)
        if cell is None:
            raise BusError(f"no actor named {name!r}")
        return cell.actor

    def runs_in_thread(self, name: str, message: Message | None = None) -> bool:
        """Whether the actor's deliveries (of ``message``'s type, when given) run in a thread."""
        cell = self._cells[name]
        return cell.in_thread if message is None else cell.threaded(message)

    @property
    def next_seq(self) -> int:
        return self._seq + 1

    @property
    def closing(self) -> bool:
        return self._closing

    def input_statistics(self) -> trio.MemoryChannelStatistics:
        """The input channel's fill level and waiting senders (back-pressure made visible)."""
        return self._input_send.statistics()

    # --- inputs ---------------------------------------------------------------------------
    async def submit(self, envelope: Envelope, accepts: Match | None = None) -> Outcome:
        """Queue an external input (waiting while the input channel is full) and wait until it
        has been run to quiescence; returns its :class:`Outcome`. Raises
        :class:`RuntimeStopped` when the runtime closes or crashes first."""
        if self._closing or self.stopped.is_set():
            raise RuntimeStopped("podshim runtime is shutting down")
        self._check_destination(envelope)
        item = _Input(envelope, accepts or (lambda _message: False))
        self._queued.add(item)
        try:
            try:
                await self._input_send.send(item)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise RuntimeStopped("podshim runtime is shutting down") from None
            # The caller may be cancelled (its client went away); the input still runs to the
            # end in the dispatcher's task, so no admission is ever left half done.
            await item.done.wait()
        finally:
            self._queued.discard(item)
        if item.error is not None:
            raise item.error
        return item.outcome

    async def request(
        self, message: Message, reply_types: tuple[type[Message], ...] = (), *, to: str = "arbiter",
        accepts: Match | None = None,
    ) -> Message | None:
        """Submit ``message`` to actor ``to`` and return the first delivery it causes whose type
        is in ``reply_types`` and that concerns the same pod/container (``accepts`` overrides
        that test); None when there is none (e.g. an unmanaged container)."""
        subject = accepts or same_subject(message)
        outcome = await self.submit(
            Envelope(to=to, message=message),
            lambda reply: isinstance(reply, reply_types) and subject(reply),
        )
        return outcome.reply

    def close(self) -> None:
        """Structured shutdown: finish the input in progress, refuse the rest, end the tasks."""
        if self._closing:
            return
        self._closing = True
        self._input_send.close()

    # --- the tasks ------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`close` (returns) or an actor fails (raises ActorError)."""
        if self._started:
            raise RuntimeError("a TrioRuntime runs once")
        self._started = True
        try:
            async with trio.open_nursery() as nursery:
                for cell in self._cells.values():
                    nursery.start_soon(self._actor_task, cell, name=f"actor:{cell.actor.name}")
                self._refresh_snapshot()
                task_status.started()
                await self._dispatch_inputs()
                for cell in self._cells.values():
                    cell.inbox_send.close()
        except BaseExceptionGroup as group:
            failure = _first_failure(group)
            if failure is None:
                raise
            self.failure = failure
            log.critical("podshim runtime stopped: %s", " ".join(str(failure).split()))
            self._fail_pending(RuntimeStopped(f"podshim runtime stopped: {failure}"))
            raise failure  # noqa: B904 - the group is kept as __context__
        finally:
            self._closing = True
            self._fail_pending(RuntimeStopped("podshim runtime stopped"))
            self.stopped.set()

    async def _dispatch_inputs(self) -> None:
        async with self._input_receive:
            async for item in self._input_receive:
                if self._closing:
                    item.error = RuntimeStopped("podshim runtime is shutting down")
                    item.done.set()
                    continue
                async with self.admission_lock:
                    try:
                        await self._run_durably(item)
                    except (ActorError, BusError) as err:
                        item.error = RuntimeStopped(f"podshim runtime stopped: {err}")
                        item.done.set()
                        raise
                self.inputs_handled += 1
                self._refresh_snapshot()
                item.done.set()

    async def _run_durably(self, item: _Input) -> None:
        # The input's checkpoints are written, and their directory fsynced once (as the sync
        # bus's node does per decision), before anyone hears of its outcome: one worker-thread
        # job for all of it. An input that fails (an actor raised, the runtime was cancelled)
        # writes nothing more: nobody hears of its outcome, and the files keep the state from
        # before it, apart from what a cgroup write already needed on disk (see _run_to_idle).
        if self._batch is None:
            await self._run_to_idle(item)
            return
        self._batch.begin_batch(hold=True)
        try:
            await self._run_to_idle(item)
        except BaseException:
            self._batch.end_batch()
            self._batch.drop_held()
            raise
        if self._batch.end_batch():
            try:
                await trio.to_thread.run_sync(self._flush)
            except BaseException:
                self._batch.drop_held()  # cancelled before the job started, or a write failed
                raise

    def _flush(self) -> None:
        assert self._batch is not None
        try:
            self._batch.flush()
        except OSError as err:
            # The state on disk no longer follows the decisions: stop, as a failing actor does.
            raise BusError(f"writing the checkpoints failed: {err}") from err

    async def _run_to_idle(self, item: _Input) -> None:
        # Exactly Bus.run_until_idle after Bus.send(envelope): same seq, same FIFO order.
        queue: deque[tuple[str, Envelope]] = deque([(EXTERNAL, item.envelope)])
        outcome = item.outcome
        while queue:
            if len(outcome.deliveries) >= self._limit:
                raise BusError(f"still busy after {self._limit} deliveries (message loop?)")
            sender, envelope = queue.popleft()
            self._seq += 1
            delivery = Delivery(seq=self._seq, sender=sender, to=envelope.to, msg=envelope.message)
            for tap in self.taps:
                tap.record(delivery)
            outcome.deliveries.append(delivery)
            if outcome.reply is None and item.accepts(delivery.msg):
                outcome.reply = delivery.msg
            if envelope.to == EXTERNAL:
                continue  # an outcome for the outside world: numbered and tapped, like the bus's outbox
            cell = self._cells[envelope.to]
            if self._batch is not None and self._batch.holding and cell.threaded(envelope.message):
                # Write-ahead: a threaded actor acts on the node (a cgroup write), and what the
                # state decided must be on disk first, as the kubelet checkpoints a CPU
                # assignment before the container starts with it.
                await trio.to_thread.run_sync(self._flush)
            await cell.inbox_send.send(delivery)
            emitted = await cell.reply_receive.receive()
            try:
                for out in emitted:
                    if not isinstance(out, Envelope):
                        raise BusError(f"handle() returned {type(out).__name__}, not an Envelope")
                    self._check_destination(out)
            except BusError as err:
                raise ActorError(delivery, err) from err
            queue.extend((cell.actor.name, out) for out in emitted)

    async def _actor_task(self, cell: _Cell) -> None:
        actor = cell.actor
        async with cell.inbox_receive:
            async for delivery in cell.inbox_receive:
                try:
                    if cell.threaded(delivery.msg):
                        emitted = await trio.to_thread.run_sync(actor.handle, delivery.msg)
                    else:
                        emitted = actor.handle(delivery.msg)
                except Exception as err:
                    # The reply channel stays open: the dispatcher must see this error (through
                    # the nursery), not an EndOfChannel racing it.
                    raise ActorError(delivery, err) from err
                await cell.reply_send.send(emitted)
        await cell.reply_send.aclose()

    # --- helpers --------------------------------------------------------------------------
    def _check_destination(self, envelope: Envelope) -> None:
        if envelope.to != EXTERNAL and envelope.to not in self._cells:
            raise BusError(f"no actor named {envelope.to!r} (for {message_type(envelope.message)})")

    def _refresh_snapshot(self) -> None:
        if self._snapshot_fn is not None:
            self.snapshot = self._snapshot_fn()

    def _fail_pending(self, error: RuntimeStopped) -> None:
        for item in list(self._queued):
            if not item.done.is_set():
                item.error = error
                item.done.set()


def _first_failure(group: BaseExceptionGroup[BaseException]) -> ActorError | BusError | None:
    for error in group.exceptions:
        if isinstance(error, (ActorError, BusError)):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = _first_failure(error)
            if found is not None:
                return found
    return None
