"""The deterministic FIFO bus: delivery order, determinism, taps and error propagation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shim.actors.base import EXTERNAL, Envelope
from shim.messages import AdmitPod, Hints, HintsRequest, Message, Reconcile, RemovePod
from shim.pod import Container, Pod
from shim.runtime import ActorError, Bus, BusError, Delivery, Recorder, TraceHeader


def pod(uid: str) -> Pod:
    return Pod(uid=uid, name=uid, containers=(Container(name="c", kind="app"),))


@dataclass
class Asker:
    """On AdmitPod asks every provider for hints; records the answers it gets."""

    providers: tuple[str, ...] = ("cpu", "memory")
    name: str = "arbiter"
    answers: list[tuple[str, str]] = field(default_factory=list)

    def handle(self, message: Message) -> list[Envelope]:
        if isinstance(message, AdmitPod):
            return [Envelope(to=p, message=HintsRequest(pod=message.pod)) for p in self.providers]
        if isinstance(message, Hints):
            self.answers.append((message.provider, message.pod_uid))
            return []
        raise TypeError(f"unexpected {type(message).__name__}")


@dataclass
class Provider:
    """Answers every HintsRequest with an empty Hints."""

    name: str

    def handle(self, message: Message) -> list[Envelope]:
        assert isinstance(message, HintsRequest)
        return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=message.pod_uid))]


@dataclass
class Failing:
    name: str = "broken"

    def handle(self, message: Message) -> list[Envelope]:
        raise ValueError("boom")


@dataclass
class Emitter:
    """Emits a fixed list of envelopes for any message."""

    out: list[Envelope]
    name: str = "emitter"

    def handle(self, message: Message) -> list[Envelope]:
        return list(self.out)


def summary(deliveries: list[Delivery]) -> list[tuple[int, str, str, str, str]]:
    return [(d.seq, d.sender, d.to, type(d.msg).__name__, getattr(d.msg, "pod_uid", "")) for d in deliveries]


def make_bus(**kwargs: object) -> tuple[Bus, Asker]:
    asker = Asker()
    bus = Bus([asker, Provider("cpu"), Provider("memory")], **kwargs)  # type: ignore[arg-type]
    return bus, asker


def test_fifo_order_across_actors() -> None:
    bus, asker = make_bus()
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("a"))))
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("b"))))
    deliveries = bus.run_until_idle()
    assert summary(deliveries) == [
        (1, EXTERNAL, "arbiter", "AdmitPod", "a"),
        (2, EXTERNAL, "arbiter", "AdmitPod", "b"),
        (3, "arbiter", "cpu", "HintsRequest", "a"),
        (4, "arbiter", "memory", "HintsRequest", "a"),
        (5, "arbiter", "cpu", "HintsRequest", "b"),
        (6, "arbiter", "memory", "HintsRequest", "b"),
        (7, "cpu", "arbiter", "Hints", "a"),
        (8, "memory", "arbiter", "Hints", "a"),
        (9, "cpu", "arbiter", "Hints", "b"),
        (10, "memory", "arbiter", "Hints", "b"),
    ]
    assert asker.answers == [("cpu", "a"), ("memory", "a"), ("cpu", "b"), ("memory", "b")]
    assert bus.idle
    assert bus.run_until_idle() == []
    assert bus.step() is None


def test_same_inputs_same_trace() -> None:
    texts = []
    for _ in range(2):
        recorder = Recorder(TraceHeader(config={"topologyManagerScope": "pod"}))
        bus, _asker = make_bus(tap=recorder)
        for uid in ("x", "y", "z"):
            bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod(uid))))
            bus.run_until_idle()
        texts.append(recorder.text())
    assert texts[0] == texts[1]
    assert len(texts[0].splitlines()) == 1 + 3 * 5


def test_tap_sees_every_delivery_in_order() -> None:
    seen: list[Delivery] = []

    class ListTap:
        def record(self, delivery: Delivery) -> None:
            seen.append(delivery)

    bus, _asker = make_bus(tap=ListTap())
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("a"))))
    assert seen == []  # queued, not delivered yet
    deliveries = bus.run_until_idle()
    assert seen == deliveries


def test_deliver_goes_ahead_of_the_queue() -> None:
    bus, _asker = make_bus()
    bus.send(Envelope(to="arbiter", message=AdmitPod(pod=pod("queued"))))
    first = bus.deliver(Envelope(to="arbiter", message=AdmitPod(pod=pod("now"))))
    assert (first.seq, first.sender) == (1, EXTERNAL)
    assert summary(bus.run_until_idle())[:3] == [
        (2, EXTERNAL, "arbiter", "AdmitPod", "queued"),
        (3, "arbiter", "cpu", "HintsRequest", "now"),
        (4, "arbiter", "memory", "HintsRequest", "now"),
    ]


def test_actor_error_names_actor_message_and_seq() -> None:
    seen: list[Delivery] = []

    class ListTap:
        def record(self, delivery: Delivery) -> None:
            seen.append(delivery)

    bus = Bus([Failing()], tap=ListTap())
    bus.send(Envelope(to="broken", message=Reconcile()))
    with pytest.raises(ActorError) as caught:
        bus.run_until_idle()
    error = caught.value
    assert error.actor == "broken"
    assert error.delivery == Delivery(seq=1, sender=EXTERNAL, to="broken", msg=Reconcile())
    assert isinstance(error.__cause__, ValueError)
    assert str(error) == "actor 'broken' failed on Reconcile from 'external' (seq 1): ValueError: boom"
    # The failing delivery is in the trace: a recorded run shows what crashed.
    assert seen == [error.delivery]


def test_unknown_destination_is_refused() -> None:
    bus = Bus()
    with pytest.raises(BusError, match="no actor named 'nobody'"):
        bus.send(Envelope(to="nobody", message=Reconcile()))


def test_emitting_to_an_unknown_actor_enqueues_nothing() -> None:
    good = Envelope(to="emitter", message=RemovePod(pod_uid="p"))
    bad = Envelope(to="nobody", message=Reconcile())
    bus = Bus([Emitter([good, bad])])
    bus.send(Envelope(to="emitter", message=Reconcile()))
    with pytest.raises(ActorError, match="no actor named 'nobody'") as caught:
        bus.step()
    assert caught.value.actor == "emitter"
    assert bus.idle


def test_handle_must_return_envelopes() -> None:
    bus = Bus([Emitter([Reconcile()])])  # type: ignore[list-item]
    with pytest.raises(ActorError, match="not an Envelope"):
        bus.deliver(Envelope(to="emitter", message=Reconcile()))


def test_names_are_unique_and_external_is_reserved() -> None:
    bus = Bus([Provider("cpu")])
    with pytest.raises(BusError, match="already taken"):
        bus.register(Provider("cpu"))
    with pytest.raises(BusError, match="already taken"):
        bus.register(Provider(EXTERNAL))
    assert bus.actor("cpu").name == "cpu"


def test_run_until_idle_limit_stops_a_message_loop() -> None:
    loop = Envelope(to="emitter", message=Reconcile())
    bus = Bus([Emitter([loop])])
    bus.send(loop)
    with pytest.raises(BusError, match="still busy after 50 deliveries"):
        bus.run_until_idle(limit=50)
    assert bus.next_seq == 51
