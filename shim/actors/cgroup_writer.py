"""CgroupWriterActor: turns :class:`~shim.messages.Apply` into cgroup writes through a backend.

The backend does the writes (``shim.cgroups`` on a real node, :class:`RecordingCgroupBackend`
in tests and dry runs). A write the kernel refuses is an ``OSError`` and becomes
:class:`~shim.messages.ApplyFailed` with its errno and path; anything else is a bug and
propagates to the runtime.
"""

from __future__ import annotations

import os
from typing import Protocol

import msgspec

from shim.actors.base import Envelope
from shim.messages import Applied, Apply, ApplyFailed, CPUQuota, Message

NAME = "cgroup-writer"


class CgroupBackend(Protocol):
    """Pins one container's cgroup: cpuset.cpus / cpuset.mems, the CFS quota decision, and
    optionally the affinity of ``pid``'s threads. ``pod_uid`` lets a backend find the pod cgroup
    (an unlimited container lifts its pod's CFS quota too). Raises ``OSError`` (with ``filename``
    set to the file it failed on) when a write fails."""

    def apply(
        self,
        cgroup: str,
        *,
        cpus: str,
        mems: str,
        cpu_quota: CPUQuota,
        cpu_limit_millis: int | None,
        pid: int | None,
        pod_uid: str | None = None,
    ) -> None: ...


# These are msgspec Structs rather than dataclasses: the OCI hook imports this module on every
# container start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class AppliedCall(msgspec.Struct, frozen=True, weakref=True):
    """One call a :class:`RecordingCgroupBackend` received."""

    cgroup: str
    cpus: str
    mems: str
    cpu_quota: CPUQuota
    cpu_limit_millis: int | None
    pid: int | None


class RecordingCgroupBackend(msgspec.Struct, weakref=True):
    """An in-memory backend: records every call; ``failures`` maps a cgroup to the ``(errno,
    path)`` its writes fail with. It models no cgroup tree, so ``pod_uid`` is not recorded."""

    calls: list[AppliedCall] = msgspec.field(default_factory=list)
    failures: dict[str, tuple[int, str]] = msgspec.field(default_factory=dict)

    def apply(
        self,
        cgroup: str,
        *,
        cpus: str,
        mems: str,
        cpu_quota: CPUQuota,
        cpu_limit_millis: int | None,
        pid: int | None,
        pod_uid: str | None = None,
    ) -> None:
        if cgroup in self.failures:
            code, path = self.failures[cgroup]
            raise OSError(code, os.strerror(code), path)
        self.calls.append(AppliedCall(cgroup, cpus, mems, cpu_quota, cpu_limit_millis, pid))


class CgroupWriterActor:
    """Applies placements to cgroups and reports each outcome to ``reply_to``."""

    def __init__(self, backend: CgroupBackend, *, reply_to: str = "arbiter", name: str = NAME) -> None:
        self._backend = backend
        self._reply_to = reply_to
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case Apply():
                return [Envelope(to=self._reply_to, message=self._apply(message))]
            case _:
                raise TypeError(f"{self._name} cannot handle {type(message).__name__}")

    def _apply(self, request: Apply) -> Applied | ApplyFailed:
        try:
            self._backend.apply(
                request.cgroup,
                cpus=request.cpus,
                mems=request.mems,
                cpu_quota=request.cpu_quota,
                cpu_limit_millis=request.cpu_limit_millis,
                pid=request.pid,
                pod_uid=request.pod_uid,
            )
        except OSError as err:
            return ApplyFailed(
                pod_uid=request.pod_uid,
                container=request.container,
                errno=err.errno or 0,
                path=os.fsdecode(err.filename) if err.filename is not None else request.cgroup,
                message=err.strerror or str(err),
            )
        return Applied(pod_uid=request.pod_uid, container=request.container, cgroup=request.cgroup)
