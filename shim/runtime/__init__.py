"""Runtimes that drive the actors: the deterministic FIFO bus, trace recording and replay.

Importing this package does not import trio (the hook's embedded mode uses the bus); the trio
runtime lives in ``shim.runtime.trio_runtime`` and is imported only by the daemon.
"""

from shim.runtime.bus import ActorError, Bus, BusError, Delivery, Tap
from shim.runtime.recorder import Recorder, Trace, TraceError, TraceHeader, load_trace, parse_trace
from shim.runtime.replay import ActorFactory, Mismatch, ReplayResult, replay, replay_file

__all__ = [
    "ActorError",
    "ActorFactory",
    "Bus",
    "BusError",
    "Delivery",
    "Mismatch",
    "Recorder",
    "ReplayResult",
    "Tap",
    "Trace",
    "TraceError",
    "TraceHeader",
    "load_trace",
    "parse_trace",
    "replay",
    "replay_file",
]
