"""The deterministic runtime: one FIFO queue, one delivery at a time, in a single thread.

Used by the CLI, the hook's embedded mode and replay. Every delivery gets the next sequence
number and is shown to the optional tap (the trace recorder) *before* the actor handles it, so
a trace also names the message an actor failed on. Given the same actors and the same inputs,
the deliveries are the same, in the same order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol

import msgspec

from shim.actors.base import EXTERNAL, Actor, Envelope
from shim.messages import Message, message_type


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One delivered message: its sequence number, sender, destination and the message. It is
    also one line of a trace (``{"seq", "from", "to", "msg"}``)."""

    seq: int
    sender: str = msgspec.field(name="from")
    to: str
    msg: Message


class Tap(Protocol):
    """Sees every delivery, in order (the trace recorder)."""

    def record(self, delivery: Delivery) -> None: ...


class BusError(RuntimeError):
    """The bus was used wrongly (unknown or duplicate actor, runaway message loop)."""


class ActorError(RuntimeError):
    """An actor raised while handling a delivery; ``__cause__`` is the original exception."""

    def __init__(self, delivery: Delivery, error: BaseException) -> None:
        super().__init__(
            f"actor {delivery.to!r} failed on {message_type(delivery.msg)} from {delivery.sender!r} "
            f"(seq {delivery.seq}): {type(error).__name__}: {error}"
        )
        self.delivery = delivery
        self.actor = delivery.to
        self.error = error


class Bus:
    """Actors registered by name and a FIFO queue of ``(sender, envelope)`` between them."""

    def __init__(self, actors: Iterable[Actor] = (), *, tap: Tap | None = None) -> None:
        self._actors: dict[str, Actor] = {}
        self._queue: deque[tuple[str, Envelope]] = deque()
        self._seq = 0
        self.tap = tap
        self.outbox: list[Delivery] = []
        """Messages the actors addressed to ``external`` (outcomes), in delivery order."""
        for actor in actors:
            self.register(actor)

    def register(self, actor: Actor) -> None:
        if actor.name in self._actors or actor.name == EXTERNAL:
            raise BusError(f"actor name {actor.name!r} is already taken")
        self._actors[actor.name] = actor

    def actor(self, name: str) -> Actor:
        try:
            return self._actors[name]
        except KeyError:
            raise BusError(f"no actor named {name!r}") from None

    @property
    def next_seq(self) -> int:
        return self._seq + 1

    @property
    def idle(self) -> bool:
        return not self._queue

    def _check_destination(self, name: str) -> None:
        if name != EXTERNAL:
            self.actor(name)

    def send(self, envelope: Envelope, *, sender: str = EXTERNAL) -> None:
        """Queue a message; it is delivered after everything queued before it."""
        self._check_destination(envelope.to)
        self._queue.append((sender, envelope))

    def peek(self) -> tuple[str, Envelope] | None:
        """The next ``(sender, envelope)`` to deliver, without delivering it."""
        return self._queue[0] if self._queue else None

    def step(self) -> Delivery | None:
        """Deliver the oldest queued message; None when the queue is empty."""
        if not self._queue:
            return None
        sender, envelope = self._queue.popleft()
        return self.deliver(envelope, sender=sender)

    def deliver(self, envelope: Envelope, *, sender: str = EXTERNAL) -> Delivery:
        """Deliver now, ahead of the queue (replay uses this for external inputs). The actor's
        messages join the end of the queue, all or none. A message to ``external`` goes to
        :attr:`outbox` (it is still numbered and tapped, so traces hold the outcomes)."""
        self._check_destination(envelope.to)
        self._seq += 1
        delivery = Delivery(seq=self._seq, sender=sender, to=envelope.to, msg=envelope.message)
        if self.tap is not None:
            self.tap.record(delivery)
        if envelope.to == EXTERNAL:
            self.outbox.append(delivery)
            return delivery
        actor = self.actor(envelope.to)
        try:
            emitted = actor.handle(envelope.message)
            for out in emitted:
                if not isinstance(out, Envelope):
                    raise BusError(f"handle() returned {type(out).__name__}, not an Envelope")
                self._check_destination(out.to)
        except Exception as err:
            raise ActorError(delivery, err) from err
        self._queue.extend((actor.name, out) for out in emitted)
        return delivery

    def run_until_idle(self, *, limit: int | None = None) -> list[Delivery]:
        """Deliver until the queue is empty; returns the deliveries made. ``limit`` bounds their
        number (a guard against actors that answer each other forever)."""
        done: list[Delivery] = []
        while self._queue:
            if limit is not None and len(done) >= limit:
                raise BusError(f"still busy after {limit} deliveries (message loop?)")
            delivery = self.step()
            assert delivery is not None
            done.append(delivery)
        return done
