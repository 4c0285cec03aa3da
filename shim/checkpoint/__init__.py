"""Kubelet-compatible checkpoint plumbing shared by the CPU and memory managers.

``fnv`` (FNV-1a 32: the native helper's C loop when ``shim._native`` is built, else pure
Python), ``gojson`` (Go ``encoding/json`` behaviour, with encoders compiled once per type) and
``godump`` (the go-spew text the legacy checksums hash, likewise) are pure. ``atomic`` is the
only module that touches files; it is not imported here so that the functional core can use the
pure modules without pulling in file I/O.
"""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint the kubelet would refuse; ``str()`` is the kubelet's error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


CORRUPTED = "checkpoint is corrupted"
"""``errors.CorruptCheckpointError`` text: a checksum does not match."""

__all__ = ["CORRUPTED", "CheckpointError"]
