"""Runtimes that drive the actors: the deterministic FIFO bus, trace recording and replay.

Importing this package does not import trio (the hook's embedded mode uses the bus); the trio
runtime lives in ``shim.runtime.trio_runtime`` and is imported only by the daemon. The names
below are loaded on first use: the hook needs only the bus, and the recorder and replay modules
cost it milliseconds on every container start.
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shim.runtime.bus import ActorError, Bus, BusError, Delivery, Tap
    from shim.runtime.recorder import Recorder, Trace, TraceError, TraceHeader, load_trace, parse_trace
    from shim.runtime.replay import ActorFactory, Mismatch, ReplayResult, replay, replay_file

_HOMES = {
    "bus": ("ActorError", "Bus", "BusError", "Delivery", "Tap"),
    "recorder": ("Recorder", "Trace", "TraceError", "TraceHeader", "load_trace", "parse_trace"),
    "replay": ("ActorFactory", "Mismatch", "ReplayResult", "replay", "replay_file"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """This package's module type: the function ``replay`` shares its name with the submodule
    that defines it, and importing a submodule binds it as an attribute of its package; the
    package's ``replay`` stays the function (as an eager ``from ... import replay`` here would
    leave it)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "replay" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

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
