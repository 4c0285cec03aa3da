"""``podshim replay TRACE [--check]``: re-run a recorded trace on fresh actors.

The actors are rebuilt from the trace header (configuration, topology, the state files as they
were) with in-memory effects. Without ``--check`` the trace's external inputs are fed again and
the outcomes printed; with ``--check`` every delivery must equal the recorded one, and the first
that differs is printed (seq, expected, got) with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shim.frontends.cli import EXIT_OK, EXIT_REJECTED, RuntimeFailure, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="a trace (JSON lines) written by --trace or the daemon")
    parser.add_argument("--check", action="store_true", help="fail (exit 1) on the first delivery that differs")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")


def _load(path: str) -> Any:
    from shim.runtime.recorder import TraceError, load_trace

    try:
        return load_trace(path)
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    except TraceError as error:
        raise UsageError(f"{path}: {error}") from None


def rerun(trace: Any, factory: Any) -> tuple[int, list[Any]]:
    """Feed the trace's external inputs to fresh actors in order; (deliveries, what the actors
    sent out: admission outcomes, cgroup results)."""
    from shim.actors.base import EXTERNAL, Envelope
    from shim.runtime.bus import Bus

    bus = Bus(factory(trace.header))
    for delivery in trace.deliveries:
        if delivery.sender == EXTERNAL:
            bus.send(Envelope(to=delivery.to, message=delivery.msg))
            bus.run_until_idle(limit=1_000_000)
    outputs = [d.msg for d in bus.outbox]
    return bus.next_seq - 1, outputs


def run(args: argparse.Namespace) -> int:
    from shim.config import ConfigError
    from shim.frontends import render
    from shim.messages import Admitted, Rejected
    from shim.runtime.bus import ActorError, BusError
    from shim.runtime.node import NodeStartError, actor_factory
    from shim.runtime.recorder import encode_line
    from shim.runtime.replay import replay

    trace = _load(args.trace)
    factory = actor_factory()
    try:
        if args.check:
            result = replay(trace, factory)
        else:
            delivered, outputs = rerun(trace, factory)
    except (ConfigError, ValueError) as error:
        raise UsageError(f"{args.trace}: {error}") from None
    except (NodeStartError, ActorError, BusError) as error:
        raise RuntimeFailure(f"{args.trace}: {error}") from None
    if args.check:
        mismatch = result.mismatch
        document: dict[str, Any] = {"trace": args.trace, "delivered": result.delivered, "ok": result.ok}
        if mismatch is not None:
            document["mismatch"] = {
                "seq": mismatch.seq,
                "expected": None if mismatch.expected is None else _plain(encode_line(mismatch.expected)),
                "got": None if mismatch.got is None else _plain(encode_line(mismatch.got)),
            }
        if args.output == "json":
            sys.stdout.write(render.dumps(document))
        elif mismatch is None:
            sys.stdout.write(f"{args.trace}: {result.delivered} deliveries replayed identically\n")
        else:
            sys.stdout.write(f"{args.trace}: {mismatch.describe()}\n")
        sys.stdout.flush()
        return EXIT_OK if result.ok else EXIT_REJECTED
    results = [render.pod_result(m) for m in outputs if isinstance(m, Admitted | Rejected)]
    if args.output == "json":
        sys.stdout.write(render.dumps({"trace": args.trace, "delivered": delivered, "pods": results}))
    else:
        sys.stdout.write(f"{args.trace}: {delivered} deliveries\n")
        if results:
            sys.stdout.write("\n" + render.admit_table(results))
    sys.stdout.flush()
    return EXIT_OK


def _plain(line: str) -> Any:
    import json

    return json.loads(line)
