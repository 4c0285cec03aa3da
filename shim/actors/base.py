"""What an actor is, and the small interfaces through which actors reach the outside world.

An actor is sans-IO: ``handle(message)`` updates the actor's own state and returns the
messages to send, each in an :class:`Envelope` naming its destination. Time and checkpoints
come through :class:`Clock` and :class:`CheckpointStore`, passed in at construction, so that
a runtime (the FIFO bus, trio, replay) can drive the same actor with real or in-memory effects.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import msgspec

from shim.messages import Message

EXTERNAL = "external"
"""The sender name of messages that come from outside the actors (CLI, socket, hook, timer)."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """A message and the name of the actor it goes to."""

    to: str
    message: Message


@runtime_checkable
class Actor(Protocol):
    """Anything with a unique ``name`` that turns one message into the messages it sends."""

    @property
    def name(self) -> str: ...

    def handle(self, message: Message) -> list[Envelope]: ...


class Clock(Protocol):
    """Seconds on a monotonic clock (only differences mean anything)."""

    def now(self) -> float: ...


class CheckpointStore(Protocol):
    """Named text documents (the state files). ``save`` is atomic: after a crash a reader sees
    either the old text or the new one, never a mix."""

    def load(self, name: str) -> str | None: ...

    def save(self, name: str, text: str) -> None: ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests, replay)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._now += seconds
