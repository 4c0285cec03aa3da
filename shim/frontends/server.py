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
import gc
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TextIO

import trio

from shim import __version__
from shim.frontends.cli import EXIT_OK, RuntimeFailure, UsageError, add_topology_source
from shim.frontends.hook_registry import REGISTRY_NAME, ContainerRecord, PodRecord, Registry
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
from shim.frontends.reconcile import CgroupProbe, Reconciler, Target
from shim.messages import (
    AdmitPod,
    Admitted,
    Applied,
    Apply,
    ApplyFailed,
    ContainerAssignment,
    ContainerCreated,
    Rejected,
    RemoveContainer,
    RemovePod,
)
from shim.pod import Pod
from shim.runtime.bus import BusError
from shim.runtime.trio_runtime import RuntimeStopped, TrioRuntime

if TYPE_CHECKING:
    from shim.actors.base import CheckpointStore
    from shim.actors.cgroup_writer import CgroupBackend
    from shim.actors.stores import FileCheckpointStore
    from shim.config import Config
    from shim.frontends.podwatch import PodWatcher
    from shim.topology.model import Topology

log = logging.getLogger("podshim.server")

# Where runtimes put the pod and container identity (DESIGN.md §4, "Hook").
POD_UID_KEYS = ("io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid", "podshim.io/pod-uid")
CONTAINER_KEYS = ("io.kubernetes.container.name", "io.kubernetes.cri.container-name", "podshim.io/container")
SANDBOX_KEYS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Daemon:
    """Serves protocol requests with ``runtime`` (whose arbiter is named ``arbiter`` and whose
    cgroup writer is named ``writer``).

    The daemon remembers the pods it was given (over the socket, from ``pod_dir``) and the
    outcome of each admission, and keeps a registry of the containers it pinned (cgroup, pid,
    cpus and mems last written) in ``podshim_containers.json`` when ``store`` is given, the
    embedded hook's format (shim.frontends.hook_registry): every admitted pod is recorded there
    with its spec, so a restarted daemon re-admits them (restoring, not re-allocating) and
    re-discovers their containers. ``placement(pod_uid, container)`` gives a container's CPUs
    as the CPU manager's state has them now (None: not known), which the reconcile loop compares
    with what was written.

    Stale pods (the kubelet's ``removeStaleState``: pods that are not active) are released by full
    reconcile passes: ``state_pods()`` lists the pod uids the providers' state holds, and a pod is
    stale when it is not registered, or when it came from ``--pod-dir`` (``pod_dir_pods``), no
    file there holds it any more (``pod_dir_uids()``, None until the directory was scanned) and
    none of its containers is registered.
    """

    def __init__(
        self,
        runtime: TrioRuntime,
        *,
        metrics: Metrics | None = None,
        decisions: DecisionLog | None = None,
        allowed_uids: Iterable[int] = (),
        max_frame: int = MAX_FRAME,
        arbiter: str = "arbiter",
        writer: str = "cgroups",
        pod_dir: str | os.PathLike[str] | None = None,
        store: CheckpointStore | None = None,
        registry: Registry | None = None,
        placement: Callable[[str, str], str | None] | None = None,
        probe: CgroupProbe | None = None,
        reconcile_period: float = 10.0,
        state_pods: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.decisions = decisions
        self.allowed_uids = {0, os.geteuid(), *allowed_uids}
        self.max_frame = max_frame
        self.arbiter = arbiter
        self.writer = writer
        self.pod_dir = None if pod_dir is None else Path(pod_dir)
        self.store = store
        self.registry = registry if registry is not None else Registry()
        self.placement = placement
        self.state_pods = state_pods
        self.pod_dir_uids: Callable[[], Collection[str] | None] | None = None
        # Pods between their admission and their registry record: not stale, only not yet recorded.
        self._admitting: dict[str, int] = {}
        self.reconciler = Reconciler(self, probe, period=reconcile_period, metrics=metrics, decisions=decisions)
        self.pods: dict[str, Pod] = {}
        self.admitted: dict[str, Admitted] = {}
        self.started = time.monotonic()
        self.stop_requested = trio.Event()
        self.connections = 0
        self._registry_lock = trio.Lock()

    @property
    def pod_dir_pods(self) -> set[str]:
        """The registered pods whose spec came from ``--pod-dir`` (kept in the registry file)."""
        return self.registry.pod_dir_pods

    def shutdown(self) -> None:
        """Ask :func:`run_daemon` for the structured shutdown."""
        self.stop_requested.set()

    # --- operations (the socket, the pod watcher and the hook events use them) ---------------
    async def admit(self, pod: Pod, *, source: str = "socket", save: bool = True) -> Admitted | Rejected:
        """Admit ``pod`` and record it in the registry; ``save=False`` leaves writing the
        registry to the caller (a hook event records its container too, and writes once)."""
        begin = time.perf_counter()
        self._admitting[pod.uid] = self._admitting.get(pod.uid, 0) + 1
        try:
            outcome = await self.runtime.request(AdmitPod(pod=pod), (Admitted, Rejected), to=self.arbiter)
        finally:
            self._admitting[pod.uid] -= 1
            if not self._admitting[pod.uid]:
                del self._admitting[pod.uid]
        if not isinstance(outcome, Admitted | Rejected):
            raise RuntimeError(f"admission of pod {pod.uid} produced no outcome")
        duration_ms = (time.perf_counter() - begin) * 1000
        self.pods[pod.uid] = pod
        if isinstance(outcome, Admitted):
            self.admitted[pod.uid] = outcome
            if source.startswith("pod-dir:"):
                self._mark_pod_dir(pod.uid, True)
            elif source == "socket":
                self._mark_pod_dir(pod.uid, False)
            record = self.registry.pods.get(pod.uid)
            if record is None:
                self.registry.pods[pod.uid] = PodRecord(pod=pod)
                self.registry.changed = True
            elif record.pod != pod:
                record.pod = pod
                self.registry.changed = True
        else:
            self.admitted.pop(pod.uid, None)
        if self.metrics is not None:
            self.metrics.observe_admission(outcome, duration_ms)
        if self.decisions is not None:
            self.decisions.decision(outcome, duration_ms, source=source)
        if save:
            await self.save_registry()
        self.reconciler.wake()  # the shared pool may have shrunk
        return outcome

    async def remove(self, pod_uid: str, container: str | None = None) -> None:
        message = RemovePod(pod_uid=pod_uid) if container is None else RemoveContainer(pod_uid=pod_uid,
                                                                                      container=container)
        await self.runtime.request(message, to=self.arbiter)
        if container is None:
            self.pods.pop(pod_uid, None)
            self.admitted.pop(pod_uid, None)
            self._mark_pod_dir(pod_uid, False)
            if self.registry.pods.pop(pod_uid, None) is not None:
                self.registry.changed = True
        else:
            self._forget(pod_uid, container)
        await self.save_registry()
        self.reconciler.wake()  # the shared pool may have grown

    def _mark_pod_dir(self, pod_uid: str, marked: bool) -> None:
        if (pod_uid in self.pod_dir_pods) != marked:
            (self.pod_dir_pods.add if marked else self.pod_dir_pods.discard)(pod_uid)
            self.registry.changed = True

    def _forget(self, pod_uid: str, container: str) -> None:
        # Unlike Registry.forget, the pod stays: it is still admitted (a new container of it
        # must find its spec after a restart).
        record = self.registry.pods.get(pod_uid)
        if record is not None and record.containers.pop(container, None) is not None:
            self.registry.changed = True

    async def save_registry(self) -> None:
        """Write the registry if it changed: encoded on the loop (it is only changed there),
        written in a worker thread; saves never overlap, so the newest text is written last."""
        if self.store is None:
            return
        async with self._registry_lock:
            if not self.registry.changed:
                return
            text = self.registry.text()
            self.registry.changed = False
            await trio.to_thread.run_sync(self.store.save, REGISTRY_NAME, text)

    async def restore(self, scan: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start-up: re-admit the registered pods (their assignments come back from the state
        files, nothing new is allocated), then one full reconcile pass (containers whose cgroup
        is gone are released, drifted ones pinned again, stale pods released). ``scan`` (the
        first ``--pod-dir`` scan) runs before that pass, so a pod whose file went away while the
        daemon was down is already known as stale."""
        for uid, record in list(self.registry.pods.items()):
            outcome = await self.admit(record.pod, source="restore")
            if isinstance(outcome, Rejected):
                # It no longer fits this node (e.g. the state was reset on a smaller machine).
                self.registry.pods.pop(uid, None)
                self._mark_pod_dir(uid, False)
                self.registry.changed = True
                self._event({"event": "restore", "action": "dropped", "pod_uid": uid,
                             "reason": outcome.reason, "message": outcome.message})
        await self.save_registry()
        if scan is not None:
            await scan()
        report = await self.reconciler.run_once(full=True)
        self._event({"event": "restore", "action": "done", "pods": len(self.registry.pods),
                     "containers": sum(len(r.containers) for r in self.registry.pods.values()),
                     "reapplied": len(report.reapplied), "released": len(report.released),
                     "released_pods": report.released_pods})

    def _event(self, record: dict[str, Any]) -> None:
        if self.decisions is not None:
            self.decisions.event(record)
        else:
            log.info("%s", record)

    # --- the reconcile host (shim.frontends.reconcile) ------------------------------------------
    async def reconcile_targets(self) -> list[Target]:
        # Under the admission lock the providers' state is between two inputs, never half done.
        async with self.runtime.admission_lock:
            return [
                self._target(uid, name, entry)
                for uid, record in self.registry.pods.items()
                for name, entry in record.containers.items()
            ]

    async def target(self, pod_uid: str, container: str) -> Target | None:
        """The reconcile target of one registered container (None: not registered)."""
        async with self.runtime.admission_lock:
            entry = self.registry.get(pod_uid, container)
            return None if entry is None else self._target(pod_uid, container, entry)

    def _target(self, pod_uid: str, container: str, entry: ContainerRecord) -> Target:
        assignment = self._assignment(pod_uid, container)
        cpus = self.placement(pod_uid, container) if self.placement is not None else None
        if cpus is None:
            cpus = assignment.cpus if assignment is not None else entry.cpus
        mems = assignment.mems if assignment is not None else entry.mems
        return Target(pod_uid=pod_uid, container=container, cgroup=entry.cgroup, cpus=cpus, mems=mems,
                      written_cpus=entry.cpus, written_mems=entry.mems)

    async def reapply(self, target: Target) -> tuple[int, str] | None:
        assignment = self._assignment(target.pod_uid, target.container)
        apply = Apply(
            pod_uid=target.pod_uid,
            container=target.container,
            cgroup=target.cgroup,
            cpus=target.cpus,
            mems=target.mems,
            cpu_quota=assignment.cpu_quota if assignment is not None else "limited",
            cpu_limit_millis=assignment.cpu_limit_millis if assignment is not None else None,
            pid=None,  # the cpuset write moves every task of the cgroup; a recorded pid may be reused
        )
        outcome = await self.runtime.request(apply, (Applied, ApplyFailed), to=self.writer)
        if isinstance(outcome, ApplyFailed):
            return outcome.errno, f"{outcome.path}: {outcome.message}"
        if outcome is None:
            return 0, f"{self.writer} gave no outcome"
        entry = self.registry.get(target.pod_uid, target.container)
        if entry is not None and entry.cgroup == target.cgroup:
            entry.cpus, entry.mems = target.cpus, target.mems
            self.registry.changed = True
            await self.save_registry()
        return None

    async def release_gone(self, target: Target) -> None:
        await self.remove(target.pod_uid, target.container)

    async def stale_pods(self) -> list[str]:
        """Pods that are not active: in the providers' state but not registered, or registered
        from ``--pod-dir`` whose file is gone and with no registered container left."""
        async with self.runtime.admission_lock:
            held = list(self.state_pods()) if self.state_pods is not None else []
        candidates = dict.fromkeys([*held, *sorted(self.pod_dir_pods)])
        return [uid for uid in candidates if self._stale(uid)]

    async def release_stale(self, pod_uid: str) -> bool:
        # Checked again: the pod may have been admitted (e.g. from --pod-dir) since it was listed.
        if not self._stale(pod_uid):
            return False
        await self.remove(pod_uid)
        return True

    def _stale(self, pod_uid: str) -> bool:
        if pod_uid in self._admitting:
            return False
        record = self.registry.pods.get(pod_uid)
        if record is None:
            return True
        if record.containers or pod_uid not in self.pod_dir_pods or self.pod_dir_uids is None:
            return False
        files_hold = self.pod_dir_uids()
        return files_hold is not None and pod_uid not in files_hold

    def _assignment(self, pod_uid: str, container: str) -> ContainerAssignment | None:
        admitted = self.admitted.get(pod_uid)
        if admitted is None:
            return None
        return next((c for c in admitted.containers if c.name == container), None)

    # --- requests ---------------------------------------------------------------------------
    async def handle_request(self, request: Request) -> Response:
        """The response to one request; never raises (a bug becomes an ``internal`` Error)."""
        response = await self._respond(request)
        if isinstance(request, HookEvent) and self.metrics is not None:
            action = response.result.get("action", "?") if isinstance(response, Ok) else "failed"
            self.metrics.observe_hook(request.stage, str(action))
        return response

    async def _respond(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except ProtocolError as err:
            return Error(code=err.code, message=err.message)
        except RuntimeStopped as err:
            return Error(code=UNAVAILABLE, message=str(err))
        except (BusError, RuntimeError, OSError) as err:
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
            "pods": len(self.admitted),
            "containers": sum(len(record.containers) for record in self.registry.pods.values()),
            "reconcile_passes": self.reconciler.passes,
        }

    async def _hook(self, event: HookEvent) -> Response:
        annotations = {**_str_map(event.state.get("annotations")), **event.annotations}
        if any(annotations.get(key) == "sandbox" for key in SANDBOX_KEYS):
            return _skipped("a pod sandbox")
        pod_uid = event.pod_uid or _first(annotations, POD_UID_KEYS)
        container = event.container or _first(annotations, CONTAINER_KEYS)
        if pod_uid is None or container is None:
            return _skipped("not a Kubernetes container (no pod uid or container name)")
        if event.stage == "poststop":
            if pod_uid not in self.admitted and self.registry.get(pod_uid, container) is None:
                return _skipped(f"pod {pod_uid} is not managed by podshim")
            await self.remove(pod_uid, container)
            return Ok(result={"action": "released", "pod_uid": pod_uid, "container": container})
        if event.cgroup is None:
            raise ProtocolError(BAD_REQUEST, f"createRuntime of {pod_uid}/{container}: no cgroup given")
        pid = event.pid if event.pid is not None else _int(event.state.get("pid"))
        return await self._create(pod_uid, container, event.cgroup, pid)

    async def _create(self, pod_uid: str, container: str, cgroup: str, pid: int | None) -> Response:
        if pod_uid not in self.admitted:
            given = self.pods.get(pod_uid)
            pod = given or await self._find_pod(pod_uid)
            if pod is None:
                return _skipped(f"pod {pod_uid} is not known to podshim")
            if not any(c.name == container for c in pod.all_containers()):
                return _skipped(f"container {container!r} is not in pod {pod_uid}")
            # The registry is written once, with the container's record below (or by remove()
            # when the container cannot be pinned): one fsync fewer on every container start.
            outcome = await self.admit(pod, source="hook", save=False)
            if given is None and isinstance(outcome, Admitted):
                self._mark_pod_dir(pod_uid, True)  # its spec came from a --pod-dir file
            if isinstance(outcome, Rejected):
                await self.save_registry()
                return Ok(result={"action": "rejected", "pod_uid": pod_uid, "container": container,
                                  "reason": outcome.reason, "message": outcome.message})
        assignment = self._assignment(pod_uid, container)
        if assignment is None:
            await self.save_registry()
            return _skipped(f"container {container!r} is not in pod {pod_uid}")
        created = ContainerCreated(pod_uid=pod_uid, container=container, cgroup=cgroup, pid=pid)
        applied = await self.runtime.request(created, (Applied, ApplyFailed), to=self.arbiter)
        if applied is None:
            return _skipped(f"pod {pod_uid} is not managed by podshim")
        if isinstance(applied, ApplyFailed):
            known = self.registry.pods.get(pod_uid)
            if known is None or container not in known.containers:
                # The container will not run: give back what its admission took (a re-run of the
                # hook for a container that already runs keeps its CPUs), as the embedded hook does.
                await self.remove(pod_uid, container)
            return Error(code=APPLY_FAILED, message=f"{applied.path}: {applied.message} (errno {applied.errno})")
        record = self.registry.pods.get(pod_uid)
        if record is None:
            record = self.registry.pods[pod_uid] = PodRecord(pod=self.pods[pod_uid])
        record.containers[container] = ContainerRecord(cgroup=cgroup, pid=pid, cpus=assignment.cpus,
                                                       mems=assignment.mems)
        self.registry.changed = True
        await self.save_registry()
        cpus = assignment.cpus
        # The arbiter pins what the admission decided; a shared-pool container admitted before
        # other pods took exclusive CPUs must get the pool as it is now.
        target = await self.target(pod_uid, container)
        if target is not None and target.cpus != target.written_cpus:
            failure = await self.reapply(target)
            if failure is not None:
                return Error(code=APPLY_FAILED, message=f"{failure[1]} (errno {failure[0]})")
            cpus = target.cpus
        return Ok(result={"action": "pinned", "pod_uid": pod_uid, "container": container, "cgroup": cgroup,
                          "cpus": cpus, "mems": assignment.mems, "isolation": assignment.isolation,
                          "cpu_quota": assignment.cpu_quota})

    async def _find_pod(self, pod_uid: str) -> Pod | None:
        if self.pod_dir is None:
            return None
        from shim.frontends.hook import find_pod

        try:
            return await trio.to_thread.run_sync(find_pod, self.pod_dir, pod_uid)
        except UsageError as err:
            # The file names the pod but cannot be read: the container must not start unpinned.
            raise ProtocolError(BAD_REQUEST, str(err)) from None

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


def _skipped(why: str) -> Ok:
    return Ok(result={"action": "skipped", "detail": why})


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
    reconcile: bool = True,
    grace: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Restore, then run the runtime and serve ``socket_path`` until SIGTERM/SIGINT or
    :meth:`Daemon.shutdown` (returns), or until an actor fails (raises its ActorError), with the
    reconcile loop (unless ``reconcile`` is false) and the pod directory watcher beside. ``grace``
    bounds how long the admission in progress may take to finish once shutdown starts."""
    runtime = daemon.runtime
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            scan = None
            if podwatch is not None:
                watcher = podwatch
                daemon.pod_dir_uids = lambda: set(watcher.state.owners) if watcher.scans else None
                scan = watcher.scan_once
            # Containers that lived through a restart are found and checked before any new
            # request is served, so a hook never races the restore.
            await daemon.restore(scan)
            accepting = trio.CancelScope()

            async def serve(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with accepting:
                    await daemon.serve(socket_path, handler_nursery=nursery, task_status=task_status)

            await nursery.start(serve)
            background = trio.CancelScope()

            async def timers() -> None:
                with background:
                    async with trio.open_nursery() as inner:
                        if reconcile:
                            inner.start_soon(daemon.reconciler.run)
                        if podwatch is not None:
                            inner.start_soon(podwatch.run)

            nursery.start_soon(timers)
            if handle_signals:
                nursery.start_soon(_watch_signals, daemon)
            log.info("podshim %s serving on %s", __version__, socket_path)
            task_status.started()
            await _first_of(daemon.stop_requested.wait, runtime.stopped.wait)
            log.info("podshim shutting down")
            accepting.cancel()
            background.cancel()
            runtime.close()
            with trio.move_on_after(grace):
                await runtime.stopped.wait()
            # Callers refused by the closing runtime get a moment to send their Error replies.
            with trio.move_on_after(min(grace, 1.0)):
                while daemon.connections:
                    await trio.sleep(0.01)
            with trio.move_on_after(grace):
                await daemon.save_registry()
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
                        help="move the state files aside first (to <name>.bad-<time>), as after changing the "
                             "kubelet's policies")
    parser.add_argument("--allow-uid", metavar="UID", type=int, action="append", default=[],
                        help="let this uid use the socket too (root and the daemon's uid always can)")


def run(args: argparse.Namespace) -> int:
    from shim.config import ConfigError, load_config
    from shim.frontends.cli import load_machine
    from shim.frontends.metrics import parse_listen, serve_metrics
    from shim.runtime.bus import ActorError

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
    if config.cpu_manager_reconcile_period <= 0:
        raise UsageError(f"cpuManagerReconcilePeriod must be positive, got {config.cpu_manager_reconcile_period}s")
    topology, _ = load_machine(args)
    trace_file = None
    if args.trace:
        try:
            trace_file = open(args.trace, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as err:
            raise UsageError(f"--trace {args.trace}: {err.strerror}") from None
    server = None
    try:
        daemon = open_daemon(
            config, topology, Path(args.state_dir), reset=args.reset_state, pod_dir=args.pod_dir,
            allowed_uids=args.allow_uid, trace=trace_file,
        )
        watcher = None
        if args.pod_dir:
            from shim.frontends.podwatch import PodWatcher

            watcher = PodWatcher(args.pod_dir, daemon, interval=args.pod_scan_interval)
        assert daemon.metrics is not None
        server = serve_metrics(daemon.metrics, *listen) if listen is not None else None
        # What start-up built (the actors, the memory manager's hint tables: 65,535 hints a list
        # on 16 NUMA nodes) lives as long as the daemon: left to the collector, every full
        # collection would walk all of it again, tens of milliseconds in the middle of an
        # admission.
        gc.freeze()
        trio.run(functools.partial(run_daemon, daemon, args.socket, podwatch=watcher))
    except ActorError as err:
        raise RuntimeFailure(f"daemon stopped: {err}") from None
    finally:
        if server is not None:
            server.close()
        if trace_file is not None:
            trace_file.close()
    return EXIT_OK


def open_daemon(
    config: Config,
    topology: Topology,
    state_dir: Path,
    *,
    cgroup_backend: CgroupBackend | None = None,
    reset: bool = False,
    pod_dir: str | os.PathLike[str] | None = None,
    allowed_uids: Iterable[int] = (),
    decisions: DecisionLog | None = None,
    trace: TextIO | None = None,
) -> Daemon:
    """The daemon of ``podshim serve``, ready for :func:`run_daemon`: state restored from the
    kubelet-format files in ``state_dir`` and validated against ``topology`` (a corrupt or
    mismatching file is a RuntimeFailure naming it; ``reset`` moves the files aside first), the
    registry of managed containers loaded, the real actors on a :class:`TrioRuntime`.
    ``cgroup_backend`` defaults to the host's cgroupfs; an FsCgroupBackend also gives the
    reconcile loop its probe."""
    from shim.actors.stores import FileCheckpointStore
    from shim.cgroups.backend import FsCgroupBackend
    from shim.frontends.reconcile import FsCgroupProbe
    from shim.frontends.state_cmd import node_state
    from shim.runtime.node import NodeStartError, build_actors, trace_header
    from shim.runtime.recorder import Recorder

    decisions = decisions if decisions is not None else DecisionLog()
    if reset:
        for old, new in reset_state(state_dir):
            decisions.event({"event": "reset_state", "moved": str(old), "to": str(new)})
    store = FileCheckpointStore(state_dir)
    backend = cgroup_backend if cgroup_backend is not None else FsCgroupBackend()
    try:
        actors = build_actors(config, topology, store, cgroup_backend=backend, state_dir=str(state_dir))
    except NodeStartError as err:
        raise RuntimeFailure(f"{err} (start with --reset-state to move the state files aside)") from None
    registry = load_registry(store, state_dir, reset=reset, decisions=decisions)
    metrics = Metrics()
    taps: list[Any] = [metrics]
    if trace is not None:
        taps.insert(0, Recorder(trace_header(config, topology, store), trace))
    runtime = TrioRuntime(
        actors.all(), taps=taps, snapshot=lambda: node_state(SimpleNamespace(actors=actors)),
        # The writer touches cgroupfs: off the loop. The providers compute on it; their
        # checkpoint saves are held by the store and written in a worker thread per input.
        blocking_names=[actors.cgroups.name],
        batch=store,
    )
    cpu_manager = actors.cpu_manager
    memory_manager = actors.memory_manager

    def state_pods() -> list[str]:
        cpu, memory = cpu_manager.state, memory_manager.state
        held = [*cpu.assignments, *cpu.pod_entries, *memory.assignments, *memory.pod_entries]
        return list(dict.fromkeys(held))

    def placement(pod_uid: str, container: str) -> str | None:
        # What the arbiter would give the container now (CPUManager.placements, without a Pod).
        if cpu_manager.policy is None:
            return str(cpu_manager.shared_cpus)
        cpus = cpu_manager.state.cpuset_or_default(pod_uid, container)
        return str(cpus) if cpus else None

    return Daemon(
        runtime, metrics=metrics, decisions=decisions, allowed_uids=allowed_uids, writer=actors.cgroups.name,
        # Its own store for the registry: the actors' store leaves the directory fsync to the end
        # of each runtime input, and the registry is written between inputs.
        pod_dir=pod_dir, store=FileCheckpointStore(state_dir), registry=registry, placement=placement,
        probe=FsCgroupProbe(backend, cgroup_root=config.cgroup_root) if isinstance(backend, FsCgroupBackend) else None,
        reconcile_period=config.cpu_manager_reconcile_period, state_pods=state_pods,
    )


def reset_state(state_dir: Path, *, now: float | None = None) -> list[tuple[Path, Path]]:
    """``--reset-state``: move the kubelet-format state files aside as ``<name>.bad-<UTC time>``
    (never deleted: they may be needed to understand what went wrong). Returns (old, new) pairs."""
    from shim.runtime.node import CPU_STATE, MEMORY_STATE

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    moved = []
    for name in (CPU_STATE, MEMORY_STATE):
        moved.extend(_move_aside(state_dir / name, stamp))
    return moved


def _move_aside(path: Path, stamp: str) -> list[tuple[Path, Path]]:
    if not path.exists():
        return []
    target = path.with_name(f"{path.name}.bad-{stamp}")
    serial = 1
    while target.exists():  # two resets within a second keep both old files
        target = path.with_name(f"{path.name}.bad-{stamp}.{serial}")
        serial += 1
    try:
        os.rename(path, target)
    except OSError as err:
        raise RuntimeFailure(f"{path}: cannot move aside to {target}: {err.strerror}") from None
    return [(path, target)]


def load_registry(store: FileCheckpointStore, state_dir: Path, *, reset: bool = False,
                  decisions: DecisionLog | None = None) -> Registry:
    """The registry of managed containers; a corrupt one stops the start-up (exit 3), unless
    ``reset``, which moves it aside like the state files."""
    from shim.frontends.hook_registry import RegistryError

    path = state_dir / REGISTRY_NAME
    try:
        return Registry.load(store, where=str(path))
    except RegistryError as err:
        if not reset:
            raise RuntimeFailure(f"{err} (start with --reset-state to move it aside)") from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for old, new in _move_aside(path, stamp):
        if decisions is not None:
            decisions.event({"event": "reset_state", "moved": str(old), "to": str(new)})
    return Registry()
