"""``podshim admit``: admit pods on a local node (dry run or a state directory) or via the daemon.

Also home of what the local-node commands share (``admit``, ``remove``, ``state``): the options
that describe the node (``--config``, ``--topology | --sysfs-root``, ``--state-dir``,
``--socket``) and :func:`local_node`, which builds the node from them, holding the state
directory's lock while it is open.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from shim.frontends.cli import EXIT_OK, EXIT_REJECTED, RuntimeFailure, UsageError, add_topology_source

if TYPE_CHECKING:
    from shim.actors.base import CheckpointStore
    from shim.config import Config
    from shim.pod import Pod
    from shim.runtime.node import Node
    from shim.topology.model import Topology


# --- shared by admit, remove and state -------------------------------------------------------


def add_node_options(parser: argparse.ArgumentParser, *, state_help: str) -> None:
    """``--config``, the topology source, ``--state-dir | --socket`` and ``--output``."""
    parser.add_argument("--config", metavar="FILE", help="KubeletConfiguration YAML (default: podshim's defaults)")
    add_topology_source(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-dir", metavar="DIR", help=state_help)
    where.add_argument("--socket", metavar="PATH", help="ask the podshim daemon listening on this socket")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")


class ReadOnlyStore:
    """A checkpoint store that reads from another and keeps writes in memory (``podshim state``
    must never change the files it shows)."""

    def __init__(self, inner: CheckpointStore) -> None:
        self.inner = inner
        self.written: dict[str, str] = {}

    def load(self, name: str) -> str | None:
        if name in self.written:
            return self.written[name]
        return self.inner.load(name)

    def save(self, name: str, text: str) -> None:
        self.written[name] = text


@contextlib.contextmanager
def local_node(
    args: argparse.Namespace, *, read_only: bool = False, trace: TextIO | None = None, must_exist: bool = False
) -> Iterator[Node]:
    """The node described by ``args``: from the state files in ``--state-dir`` (under its lock)
    or, without it, an empty node in memory. ``trace`` is an open text file that gets the trace
    (header then every delivery). Input problems raise UsageError, a node that cannot start
    (corrupt or mismatched state file) RuntimeFailure with the kubelet's message."""
    from pathlib import Path

    from shim.actors.stores import FileCheckpointStore, MemoryCheckpointStore, state_lock
    from shim.config import ConfigError, load_config
    from shim.frontends.cli import load_machine

    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    topology, _ = load_machine(args)
    state_dir: str | None = args.state_dir
    if state_dir is None:
        yield _open(config, topology, MemoryCheckpointStore(), trace, "/var/lib/kubelet")
        return
    directory = Path(state_dir)
    if must_exist and not directory.is_dir():
        raise UsageError(f"--state-dir {state_dir}: no such directory")
    try:
        with state_lock(directory):
            files = FileCheckpointStore(directory)
            store: CheckpointStore = ReadOnlyStore(files) if read_only else files
            yield _open(config, topology, store, trace, str(directory))
    except OSError as error:
        target = error.filename or state_dir
        raise RuntimeFailure(f"state directory {state_dir}: {target}: {error.strerror or error}") from None


def _open(config: Config, topology: Topology, store: CheckpointStore, trace: TextIO | None, state_dir: str) -> Node:
    from shim.runtime.node import Node, NodeStartError, trace_header
    from shim.runtime.recorder import Recorder

    tap = None if trace is None else Recorder(trace_header(config, topology, store), sink=trace)
    try:
        return Node.open(config, topology, store, tap=tap, state_dir=state_dir)
    except NodeStartError as error:
        raise RuntimeFailure(str(error)) from None


def client_module() -> Any:
    """``shim.frontends.client``, or RuntimeFailure when this build has no daemon client."""
    try:
        from shim.frontends import client
    except ImportError:
        raise RuntimeFailure("daemon client not available") from None
    return client


# --- podshim admit ----------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pods", nargs="+", metavar="POD.yaml",
                        help="pod manifests: a Pod, a List or several YAML documents per file; '-' = stdin")
    add_node_options(parser, state_help="keep the kubelet-format state files here (default: a dry run "
                                        "from an empty node)")
    parser.add_argument("--trace", metavar="FILE", help="record the admission as a replayable trace")


def read_pods(paths: list[str]) -> list[Pod]:
    """Every pod of every file, in order; the first unreadable file or invalid pod is a UsageError."""
    from shim.pod import PodError, load_pods

    pods: list[Pod] = []
    for path in paths:
        try:
            if path == "-":
                text, source = sys.stdin.read(), "<stdin>"
            else:
                with open(path, encoding="utf-8") as handle:
                    text, source = handle.read(), path
        except OSError as error:
            raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
        except UnicodeDecodeError as error:
            raise UsageError(f"{path}: not UTF-8 text: {error.reason}") from None
        try:
            found = load_pods(text, source=source)
        except PodError as error:
            raise UsageError(str(error)) from None
        if not found:
            raise UsageError(f"{source}: no pod in this file")
        pods.extend(found)
    return pods


def run(args: argparse.Namespace) -> int:
    from shim.frontends import render

    if args.pods.count("-") + (getattr(args, "topology", None) == "-") > 1:
        raise UsageError("stdin ('-') can be read only once: by --topology or by one pod file")
    pods = read_pods(args.pods)
    if args.socket is not None:
        if args.trace is not None:
            raise UsageError("--trace records a local admission; the daemon keeps its own trace")
        results = _admit_remote(args.socket, pods)
    else:
        results = _admit_local(args, pods)
    text = render.dumps({"pods": results}) if args.output == "json" else render.admit_table(results)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK if all(result.get("admitted") for result in results) else EXIT_REJECTED


def _admit_local(args: argparse.Namespace, pods: list[Pod]) -> list[dict[str, Any]]:
    from shim.frontends import render

    with contextlib.ExitStack() as stack:
        trace = None
        if args.trace is not None:
            try:
                trace = stack.enter_context(open(args.trace, "w", encoding="utf-8"))
            except OSError as error:
                raise UsageError(f"--trace {args.trace}: {error.strerror or error}") from None
        node = stack.enter_context(local_node(args, trace=trace))
        return [render.pod_result(node.admit(pod), pod) for pod in pods]
    raise AssertionError("unreachable")  # pragma: no cover


def _admit_remote(socket: str, pods: list[Pod]) -> list[dict[str, Any]]:
    client = client_module()
    try:
        with client.Client(socket) as connection:
            answer = connection.admit(pods)
    except client.DaemonError as error:
        raise RuntimeFailure(str(error)) from None
    results = answer.get("pods") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise RuntimeFailure(f"podshim daemon at {socket}: unexpected answer to Admit")
    for result, pod in zip(results, pods, strict=False):
        if isinstance(result, dict) and result.get("uid") == pod.uid:
            result.setdefault("namespace", pod.namespace)
            result.setdefault("uid_derived", pod.uid_derived)
    return results
