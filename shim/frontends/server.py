"""``podshim serve``: the node daemon (a Unix socket server over the trio runtime).

:class:`Daemon` answers protocol requests with a :class:`~shim.runtime.trio_runtime.TrioRuntime`
and serves them on a Unix socket created with mode 0600; each peer's uid is read with
``SO_PEERCRED`` (root, the daemon's own uid and ``--allow-uid`` values are let in). A malformed or
oversized frame gets an Error reply and its connection is closed; the daemon keeps serving the
others. :func:`run_daemon` owns everything in one nursery: the runtime, the socket server, the
pod directory watcher and the signal watcher. SIGTERM/SIGINT stop accepting connections, let the
admission in progress finish, refuse what is still queued, then cancel the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import trio

from shim import __version__
from shim.frontends.cli import EXIT_OK, RuntimeFailure, UsageError, add_topology_source
from shim.frontends.logs import DecisionLog
from shim.frontends.metrics import Metrics
from shim.frontends.protocol import (
    APPLY_FAILED,
    BAD_REQUEST,
    FORBIDDEN,
    INTERNAL,
    MAX_FRAME,
    UNAVAILABLE,
    Admit,
    Error,
    FrameDecoder,
    FrameForm,
    Health,
    HookEvent,
    Ok,
    ProtocolError,
    Remove,
    Request,
    Response,
    State,
    decode_request,
    encode_frame,
    pod_result,
)
from shim.messages import (
    AdmitPod,
    Admitted,
    Applied,
    ApplyFailed,
    ContainerCreated,
    Rejected,
    RemoveContainer,
    RemovePod,
)
from shim.pod import Pod
from shim.runtime.bus import BusError
from shim.runtime.trio_runtime import RuntimeStopped, TrioRuntime

if TYPE_CHECKING:
    from shim.frontends.podwatch import PodWatcher

log = logging.getLogger("podshim.server")

# Where runtimes put the pod and container identity (DESIGN.md §4, "Hook").
POD_UID_KEYS = ("io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid", "podshim.io/pod-uid")
CONTAINER_KEYS = ("io.kubernetes.container.name", "io.kubernetes.cri.container-name", "podshim.io/container")
SANDBOX_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Daemon:
    """Serves protocol requests with ``runtime`` (whose arbiter is named ``arbiter``)."""

    def __init__(
        self,
        runtime: TrioRuntime,
        *,
        metrics: Metrics | None = None,
        decisions: DecisionLog | None = None,
        allowed_uids: Iterable[int] = (),
        max_frame: int = MAX_FRAME,
        arbiter: str = "arbiter",
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.decisions = decisions
        self.allowed_uids = {0, os.geteuid(), *allowed_uids}
        self.max_frame = max_frame
        self.arbiter = arbiter
        self.started = time.monotonic()
        self.stop_requested = trio.Event()
        self.connections = 0

    def shutdown(self) -> None:
        """Ask :func:`run_daemon` for the structured shutdown."""
        self.stop_requested.set()

    # --- operations (the socket and the pod watcher use them) -------------------------------
    async def admit(self, pod: Pod, *, source: str = "socket") -> Admitted | Rejected:
        begin = time.perf_counter()
        outcome = await self.runtime.request(AdmitPod(pod=pod), (Admitted, Rejected), to=self.arbiter)
        if not isinstance(outcome, Admitted | Rejected):
            raise RuntimeError(f"admission of pod {pod.uid} produced no outcome")
        duration_ms = (time.perf_counter() - begin) * 1000
        if self.metrics is not None:
            self.metrics.observe_admission(outcome, duration_ms)
        if self.decisions is not None:
            self.decisions.decision(outcome, duration_ms, source=source)
        return outcome

    async def remove(self, pod_uid: str, container: str | None = None) -> None:
        message = RemovePod(pod_uid=pod_uid) if container is None else RemoveContainer(pod_uid=pod_uid,
                                                                                      container=container)
        await self.runtime.request(message, to=self.arbiter)

    # --- requests ---------------------------------------------------------------------------
    async def handle_request(self, request: Request) -> Response:
        """The response to one request; never raises (a bug becomes an ``internal`` Error)."""
        try:
            return await self._dispatch(request)
        except ProtocolError as err:
            return Error(code=err.code, message=err.message)
        except RuntimeStopped as err:
            return Error(code=UNAVAILABLE, message=str(err))
        except (BusError, RuntimeError) as err:
            log.error("request %s failed: %s", type(request).__name__, err)
            return Error(code=INTERNAL, message=" ".join(str(err).split()))

    async def _dispatch(self, request: Request) -> Response:
        match request:
            case Health():
                return Ok(result=self.health())
            case State():
                return Ok(result=self.runtime.snapshot)
            case Admit():
                pods = request.to_pods()
                return Ok(result={"pods": [pod_result(await self.admit(pod)) for pod in pods]})
            case Remove(pod_uid=uid, container=container):
                await self.remove(uid, container)
                return Ok(result={"pod_uid": uid, "container": container, "removed": True})
            case HookEvent():
                return await self._hook(request)
        raise ProtocolError(BAD_REQUEST, f"unsupported request {type(request).__name__}")

    def health(self) -> dict[str, Any]:
        return {
            "status": "closing" if self.runtime.closing else "ok",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "inputs_handled": self.runtime.inputs_handled,
            "connections": self.connections,
        }

    async def _hook(self, event: HookEvent) -> Response:
        annotations = {**_str_map(event.state.get("annotations")), **event.annotations}
        if any(annotations.get(key) == "sandbox" for key in SANDBOX_KEYS):
            return Ok(result={"skipped": "sandbox"})
        pod_uid = event.pod_uid or _first(annotations, POD_UID_KEYS)
        container = event.container or _first(annotations, CONTAINER_KEYS)
        if pod_uid is None or container is None:
            return Ok(result={"skipped": "not a Kubernetes container (no pod uid or container name)"})
        if event.stage == "poststop":
            await self.remove(pod_uid, container)
            return Ok(result={"pod_uid": pod_uid, "container": container, "removed": True})
        if event.cgroup is None:
            raise ProtocolError(BAD_REQUEST, f"createRuntime of {pod_uid}/{container}: no cgroup given")
        pid = event.pid if event.pid is not None else _int(event.state.get("pid"))
        created = ContainerCreated(pod_uid=pod_uid, container=container, cgroup=event.cgroup, pid=pid)
        outcome = await self.runtime.request(created, (Applied, ApplyFailed), to=self.arbiter)
        if outcome is None:
            return Ok(result={"skipped": "not managed by podshim"})
        if isinstance(outcome, ApplyFailed):
            return Error(code=APPLY_FAILED, message=f"{outcome.path}: {outcome.message} (errno {outcome.errno})")
        return Ok(result={"pod_uid": pod_uid, "container": container, "cgroup": event.cgroup, "applied": True})

    # --- connections ------------------------------------------------------------------------
    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """Serve one client until it closes, sends a malformed frame, or is not allowed."""
        self.connections += 1
        try:
            async with stream:
                await self._converse(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; nothing to answer
        except Exception:
            # One connection's bug must not take the node's daemon down; it is logged loudly.
            log.exception("connection handler failed")
        finally:
            self.connections -= 1

    async def _converse(self, stream: trio.SocketStream) -> None:
        uid = peer_uid(stream.socket)
        if uid not in self.allowed_uids:
            await _last_word(stream, encode_frame(Error(code=FORBIDDEN, message=f"uid {uid} is not allowed")))
            return
        decoder = FrameDecoder(self.max_frame)
        form: FrameForm = "msgpack"
        while True:
            data = await stream.receive_some(65536)
            if not data:
                with contextlib.suppress(ProtocolError):
                    decoder.close()
                return
            if decoder.pending == 0 and data[:1] == b"{":
                form = "json-line"
            try:
                frames = decoder.feed(data)
            except ProtocolError as err:
                await _last_word(stream, encode_frame(Error(code=err.code, message=err.message), form))
                return
            for frame in frames:
                form = frame.form
                try:
                    request = decode_request(frame)
                except ProtocolError as err:
                    reply = encode_frame(Error(code=err.code, message=err.message), form)
                    if err.fatal:
                        await _last_word(stream, reply)
                        return
                    await stream.send_all(reply)
                    continue
                response = await self.handle_request(request)
                await stream.send_all(self._encode(response, form))

    def _encode(self, response: Response, form: FrameForm) -> bytes:
        data = encode_frame(response, form)
        if len(data) > 64 << 20:
            return encode_frame(Error(code=INTERNAL, message=f"response of {len(data)} bytes is too large"), form)
        return data

    async def serve(self, path: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                    handler_nursery: trio.Nursery | None = None) -> None:
        """Listen on ``path`` until cancelled; the socket file is removed on the way out."""
        sock = await bind_unix_socket(path)
        listener = trio.SocketListener(sock)
        try:
            async with listener:
                task_status.started()
                await trio.serve_listeners(self.handle_connection, [listener], handler_nursery=handler_nursery)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


async def _last_word(stream: trio.SocketStream, data: bytes, *, drain_bytes: int = 4 << 20) -> None:
    """Send a final reply, then close gracefully. Closing a Unix socket with unread input resets
    the connection and the peer may lose the reply, so half-close and drain what the peer still
    sends (bounded in bytes and time)."""
    await stream.send_all(data)
    await stream.send_eof()
    with trio.move_on_after(1.0):
        while drain_bytes > 0:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            drain_bytes -= len(chunk)


def _first(mapping: Mapping[str, str], keys: Iterable[str]) -> str | None:
    for key in keys:
        if mapping.get(key):
            return mapping[key]
    return None


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def peer_uid(sock: trio.socket.SocketType) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    return int(uid)


async def bind_unix_socket(path: str, *, backlog: int = 128) -> trio.socket.SocketType:
    """A listening Unix socket at ``path`` with mode 0600. A stale socket file (nobody listening)
    is replaced; a live one, or a file that is not a socket, is an error."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise RuntimeFailure(f"{path}: exists and is not a socket")
        probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: its daemon is gone
        else:
            raise RuntimeFailure(f"{path}: another daemon is listening there")
        finally:
            probe.close()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the socket 0600 from its creation: no window where others may connect.
    previous = os.umask(0o177)
    try:
        await sock.bind(path)
    except OSError as err:
        sock.close()
        raise RuntimeFailure(f"{path}: cannot listen: {err.strerror}") from None
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return sock


async def run_daemon(
    daemon: Daemon,
    socket_path: str,
    *,
    podwatch: PodWatcher | None = None,
    handle_signals: bool = True,
    grace: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the runtime and serve ``socket_path`` until SIGTERM/SIGINT or :meth:`Daemon.shutdown`
    (returns), or until an actor fails (raises its ActorError). ``grace`` bounds how long the
    admission in progress may take to finish once shutdown starts."""
    runtime = daemon.runtime
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            accepting = trio.CancelScope()

            async def serve(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with accepting:
                    await daemon.serve(socket_path, handler_nursery=nursery, task_status=task_status)

            await nursery.start(serve)
            if podwatch is not None:
                nursery.start_soon(podwatch.run)
            if handle_signals:
                nursery.start_soon(_watch_signals, daemon)
            log.info("podshim %s serving on %s", __version__, socket_path)
            task_status.started()
            await _first_of(daemon.stop_requested.wait, runtime.stopped.wait)
            log.info("podshim shutting down")
            accepting.cancel()
            runtime.close()
            with trio.move_on_after(grace):
                await runtime.stopped.wait()
            # Callers refused by the closing runtime get a moment to send their Error replies.
            with trio.move_on_after(min(grace, 1.0)):
                while daemon.connections:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup:
        if runtime.failure is not None:
            raise runtime.failure from None
        raise


async def _first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    async with trio.open_nursery() as nursery:
        for wait in waits:
            nursery.start_soon(_then_cancel, wait, nursery.cancel_scope)


async def _then_cancel(wait: Callable[[], Awaitable[object]], scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


async def _watch_signals(daemon: Daemon) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            log.info("received %s", signal.Signals(received).name)
            daemon.shutdown()
            return


# --- podshim serve ------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="KubeletConfiguration YAML (default: podshim's defaults)")
    parser.add_argument("--state-dir", metavar="DIR", required=True, help="where the state files live")
    parser.add_argument("--socket", metavar="PATH", required=True, help="Unix socket to listen on (mode 0600)")
    add_topology_source(parser)
    parser.add_argument("--pod-dir", metavar="DIR", help="admit pod files appearing here, remove them when deleted")
    parser.add_argument("--pod-scan-interval", metavar="SECONDS", type=float, default=2.0,
                        help="how often --pod-dir is scanned (default: 2)")
    parser.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics here (e.g. 127.0.0.1:9254)")
    parser.add_argument("--trace", metavar="FILE", help="record every message to this trace file")
    parser.add_argument("--reset-state", action="store_true",
                        help="delete the state files first (as after changing the kubelet's policies)")
    parser.add_argument("--allow-uid", metavar="UID", type=int, action="append", default=[],
                        help="let this uid use the socket too (root and the daemon's uid always can)")


def run(args: argparse.Namespace) -> int:
    from shim.actors.stores import FileCheckpointStore
    from shim.cgroups.backend import FsCgroupBackend
    from shim.config import ConfigError, load_config
    from shim.frontends.cli import load_machine
    from shim.frontends.metrics import parse_listen, serve_metrics
    from shim.runtime.bus import ActorError
    from shim.runtime.node import CPU_STATE, MEMORY_STATE, NodeStartError, build_actors, trace_header
    from shim.runtime.recorder import Recorder

    logging.basicConfig(level=logging.INFO, format="podshim: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    try:
        listen = parse_listen(args.metrics) if args.metrics else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.pod_scan_interval <= 0:
        raise UsageError("--pod-scan-interval must be positive")
    topology, _ = load_machine(args)
    state_dir = Path(args.state_dir)
    if args.reset_state:
        for name in (CPU_STATE, MEMORY_STATE):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
    store = FileCheckpointStore(state_dir)
    try:
        actors = build_actors(config, topology, store, cgroup_backend=FsCgroupBackend(), state_dir=str(state_dir))
    except NodeStartError as err:
        raise RuntimeFailure(str(err)) from None

    from shim.frontends.state_cmd import node_state

    metrics = Metrics()
    taps: list[Any] = [metrics]
    trace_file = None
    if args.trace:
        try:
            trace_file = open(args.trace, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as err:
            raise UsageError(f"--trace {args.trace}: {err.strerror}") from None
        taps.insert(0, Recorder(trace_header(config, topology, store), trace_file))
    runtime = TrioRuntime(
        actors.all(), taps=taps, snapshot=lambda: node_state(SimpleNamespace(actors=actors)),
        # Providers fsync their checkpoints and the writer touches cgroupfs: keep them off the loop.
        blocking_names=[actor.name for actor in actors.all() if actor is not actors.arbiter],
    )
    daemon = Daemon(runtime, metrics=metrics, decisions=DecisionLog(), allowed_uids=args.allow_uid)
    watcher = None
    if args.pod_dir:
        from shim.frontends.podwatch import PodWatcher

        watcher = PodWatcher(args.pod_dir, daemon, interval=args.pod_scan_interval)
    server = serve_metrics(metrics, *listen) if listen is not None else None
    try:
        trio.run(functools.partial(run_daemon, daemon, args.socket, podwatch=watcher))
    except ActorError as err:
        raise RuntimeFailure(f"daemon stopped: {err}") from None
    finally:
        if server is not None:
            server.close()
        if trace_file is not None:
            trace_file.close()
    return EXIT_OK
