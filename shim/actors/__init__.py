"""Actors: sans-IO state machines that exchange :mod:`shim.messages` (one module per actor).

No module here imports trio or does I/O scheduling; effects sit behind the interfaces of
:mod:`shim.actors.base`, with real and in-memory implementations (:mod:`shim.actors.stores`).
"""

from shim.actors.base import EXTERNAL, Actor, CheckpointStore, Clock, Envelope, ManualClock, SystemClock

__all__ = ["EXTERNAL", "Actor", "CheckpointStore", "Clock", "Envelope", "ManualClock", "SystemClock"]
