"""Structured decision logs: one JSON line per admission decision.

Each line names the pod, the outcome, the merged hint, every container's placement and how
long the decision took, so ``jq`` can answer "why is this pod on NUMA node 1" after the fact::

    {"time": "2026-…Z", "event": "admission", "pod": {"uid": "…", "name": "web"},
     "outcome": "admitted", "hint": {"numa": [0], "preferred": true},
     "containers": [{"name": "app", "cpus": "2-3", "mems": "0", "isolation": "container"}],
     "duration_ms": 0.42}
"""

from __future__ import annotations

import datetime
import sys
from typing import Any, TextIO

import msgspec

from shim.frontends.protocol import pod_result
from shim.messages import Admitted, Rejected

_encoder = msgspec.json.Encoder()


def decision_record(outcome: Admitted | Rejected, duration_ms: float, *, source: str = "") -> dict[str, Any]:
    """The fields of one decision line (without the time stamp)."""
    result = pod_result(outcome)
    record: dict[str, Any] = {
        "event": "admission",
        "pod": {"uid": result["uid"], "name": result["name"]},
        "outcome": "admitted" if result["admitted"] else "rejected",
        "hint": result["hint"],
        "containers": [
            {key: c[key] for key in ("name", "cpus", "mems", "isolation", "cpu_quota")}
            for c in result["containers"]
        ],
        "duration_ms": round(duration_ms, 3),
    }
    if not result["admitted"]:
        record["reason"] = result["reason"]
        record["message"] = result["message"]
    if result["pod"] is not None:
        record["pod"]["assignment"] = result["pod"]
    if source:
        record["source"] = source
    return record


class DecisionLog:
    """Writes decision lines to ``stream`` (stderr by default), each flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def decision(self, outcome: Admitted | Rejected, duration_ms: float, *, source: str = "") -> None:
        self.event({**decision_record(outcome, duration_ms, source=source)})

    def event(self, record: dict[str, Any]) -> None:
        """Any structured event (startup, shutdown, skipped pod files) as one line."""
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = _encoder.encode({"time": stamp, **record}).decode("utf-8")
        self.stream.write(line + "\n")
        self.stream.flush()
