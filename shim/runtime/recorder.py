"""Traces: JSON lines, a header then one delivery per line.

::

    {"podshim": "0.1.0", "config": {...}, "topology": {...}}
    {"seq": 1, "from": "external", "to": "arbiter", "msg": {"type": "AdmitPod", ...}}
    {"seq": 2, "from": "arbiter", "to": "cpu", "msg": {"type": "HintsRequest", ...}}

The header holds what is needed to rebuild the actors (podshim version, the configuration as a
plain mapping, the topology); the deliveries are the bus's total order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec

from shim import __version__
from shim.messages import TopologyWire
from shim.runtime.bus import Delivery


class TraceHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The first line of a trace."""

    podshim: str = __version__
    config: dict[str, Any] | None = None
    topology: TopologyWire | None = None


class TraceError(ValueError):
    """A trace that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"trace line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Trace:
    """A parsed trace."""

    header: TraceHeader
    deliveries: tuple[Delivery, ...]


_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(TraceHeader)
_delivery_decoder = msgspec.json.Decoder(Delivery)


def encode_line(item: TraceHeader | Delivery) -> str:
    return _encoder.encode(item).decode("utf-8")


class Recorder:
    """Writes a trace as the bus delivers (use it as the bus's ``tap``). Without a sink the lines
    are kept in :attr:`lines`; with one, each line is written and flushed at once, so the trace
    survives a crash up to the message that caused it."""

    def __init__(self, header: TraceHeader, sink: TextIO | None = None) -> None:
        self.sink = sink
        self.lines: list[str] = []
        self._emit(encode_line(header))

    def record(self, delivery: Delivery) -> None:
        self._emit(encode_line(delivery))

    def text(self) -> str:
        """The trace kept in memory (no sink)."""
        return "".join(line + "\n" for line in self.lines)

    def _emit(self, line: str) -> None:
        if self.sink is None:
            self.lines.append(line)
        else:
            self.sink.write(line + "\n")
            self.sink.flush()


def parse_trace(lines: str | Iterable[str]) -> Trace:
    """Read a trace from its text (or its lines); blank lines are skipped."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    header: TraceHeader | None = None
    deliveries: list[Delivery] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if header is None:
                header = _header_decoder.decode(line)
            else:
                deliveries.append(_delivery_decoder.decode(line))
        except msgspec.DecodeError as err:
            kind = "header" if header is None else "delivery"
            raise TraceError(number, f"invalid {kind}: {err}") from None
    if header is None:
        raise TraceError(1, "empty trace (no header line)")
    return Trace(header=header, deliveries=tuple(deliveries))


def load_trace(path: str | os.PathLike[str]) -> Trace:
    with Path(path).open(encoding="utf-8") as handle:
        return parse_trace(handle)
