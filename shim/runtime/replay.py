"""Replay: rebuild the actors from a trace's header, feed its external inputs, compare the rest.

External inputs (deliveries whose sender is ``external``) are delivered at exactly the position
they hold in the trace; every other delivery must come out of the actors' own queue, identical
in sequence number, sender, destination and message. The bus's queue is FIFO, so leaving the
external inputs out of it keeps the order of everything else: a faithful replay reproduces the
trace delivery for delivery, and the first delivery that differs is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shim.actors.base import EXTERNAL, Actor, Envelope
from shim.runtime.bus import Bus, Delivery
from shim.runtime.recorder import Trace, TraceHeader, encode_line, load_trace

ActorFactory = Callable[[TraceHeader], Iterable[Actor]]
"""Builds fresh actors (with in-memory effects) from a trace header."""


@dataclass(frozen=True)
class Mismatch:
    """The first difference: at ``seq`` the trace has ``expected`` and the replay ``got``
    (None: the trace ended first, or the replay had nothing more to deliver)."""

    seq: int
    expected: Delivery | None
    got: Delivery | None

    def describe(self) -> str:
        def show(delivery: Delivery | None) -> str:
            return "(nothing)" if delivery is None else encode_line(delivery)

        return f"replay differs at seq {self.seq}\n  expected: {show(self.expected)}\n  got:      {show(self.got)}"


@dataclass(frozen=True)
class ReplayResult:
    """How many deliveries were replayed, and the first difference if any."""

    delivered: int
    mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


def replay(trace: Trace, factory: ActorFactory) -> ReplayResult:
    """Re-run ``trace`` on actors from ``factory``; stops at the first difference. Exceptions
    raised by actors propagate (as :class:`~shim.runtime.bus.ActorError`)."""
    bus = Bus(factory(trace.header))
    delivered = 0
    for expected in trace.deliveries:
        if expected.sender == EXTERNAL:
            got = bus.deliver(Envelope(to=expected.to, message=expected.msg), sender=EXTERNAL)
        else:
            got_or_none = _next_internal(bus)
            if got_or_none != expected:
                return ReplayResult(delivered, Mismatch(expected.seq, expected, got_or_none))
            stepped = bus.step()
            assert stepped is not None
            got = stepped
        delivered += 1
        if got != expected:
            return ReplayResult(delivered, Mismatch(expected.seq, expected, got))
    extra = _next_internal(bus)
    if extra is not None:
        return ReplayResult(delivered, Mismatch(extra.seq, None, extra))
    return ReplayResult(delivered, None)


def replay_file(path: str | os.PathLike[str], factory: ActorFactory) -> ReplayResult:
    return replay(load_trace(path), factory)


def _next_internal(bus: Bus) -> Delivery | None:
    # What the bus would deliver next, as the trace would show it.
    pending = bus.peek()
    if pending is None:
        return None
    sender, envelope = pending
    return Delivery(seq=bus.next_seq, sender=sender, to=envelope.to, msg=envelope.message)

