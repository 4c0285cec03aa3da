"""Message layer and bus throughput: encode/decode per format, deliveries per second.

Run: .venv/bin/python tests/bench/bench_messages.py  (prints a table; no assertions)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shim import messages as m
from shim.actors.base import Envelope
from shim.pod import Container, Pod, Resources
from shim.runtime import Bus, Recorder, TraceHeader


def timed(label: str, count: int, work: Callable[[], object]) -> None:
    start = time.perf_counter()
    for _ in range(count):
        work()
    elapsed = time.perf_counter() - start
    print(f"{label:<40} {count / elapsed:>12,.0f}/s {elapsed / count * 1e6:>9.2f} µs")


def main() -> None:
    resources = Resources(requests={"cpu": 2000, "memory": 1 << 30}, limits={"cpu": 2000, "memory": 1 << 30})
    containers = tuple(Container(name=f"c{i}", kind="app", resources=resources) for i in range(4))
    pod = Pod(uid="u", name="web", containers=containers)
    admit = m.AdmitPod(pod=pod)
    hints = m.Hints(
        provider="cpu", pod_uid="u",
        hints={"cpu": tuple(m.HintWire(numa=(i,), preferred=True) for i in range(8)), "memory": None},
    )
    for name, message in (("AdmitPod (4 containers)", admit), ("Hints (8 hints)", hints)):
        as_json, as_msgpack = m.encode_json(message), m.encode_msgpack(message)
        timed(f"{name} encode json", 20000, lambda msg=message: m.encode_json(msg))
        timed(f"{name} decode json", 20000, lambda data=as_json: m.decode_json(data))
        timed(f"{name} encode msgpack", 20000, lambda msg=message: m.encode_msgpack(msg))
        timed(f"{name} decode msgpack", 20000, lambda data=as_msgpack: m.decode_msgpack(data))

    class Echo:
        name = "echo"

        def handle(self, message: m.Message) -> list[Envelope]:
            return []

    for label, tap in (("bus delivery, no tap", None), ("bus delivery, recorded", Recorder(TraceHeader()))):
        bus = Bus([Echo()], tap=tap)
        envelope = Envelope(to="echo", message=hints)

        def deliver(bus: Bus = bus, envelope: Envelope = envelope) -> None:
            bus.send(envelope)
            bus.step()

        timed(label, 20000, deliver)


if __name__ == "__main__":
    main()
