"""The daemon's wire protocol: frames, requests and responses (sans-IO, shared by client and server).

A frame is a 4-byte big-endian payload length followed by the payload: msgpack, or JSON when the
payload's first byte is ``{``. For the tiniest clients (``socat``, ``nc``) a frame may also be one
line of JSON *without* the length prefix: the stream then starts with ``{`` where a length would
be, which no valid length can (it would be over 2 GiB), and the reply comes back the same way.

Requests and responses are msgspec Structs in tagged unions (``{"type": "Admit", ...}``).
:class:`FrameDecoder` turns received bytes into :class:`Frame` objects and never touches a
socket, so framing is testable by feeding bytes. This module must not import trio: the OCI hook's
client imports it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import msgspec

from shim.messages import Admitted, HintWire, Rejected
from shim.pod import Pod, PodError

MAX_FRAME = 1 << 20
"""Largest payload the server accepts (1 MiB); a request this big is malformed, not a pod."""

MAX_RESPONSE = 64 << 20
"""Largest payload a client accepts (a node's whole state fits easily)."""

HEADER = struct.Struct(">I")

FrameForm = Literal["msgpack", "json", "json-line"]

# Error codes of Error responses.
BAD_FRAME = "bad_frame"  # the bytes cannot be a frame or cannot be decoded: connection closed
TOO_LARGE = "too_large"  # the frame is over the size limit: connection closed
BAD_REQUEST = "bad_request"  # a well-formed frame that is not a valid request
FORBIDDEN = "forbidden"  # the peer's uid is not allowed
UNAVAILABLE = "unavailable"  # the daemon is shutting down or its runtime stopped
APPLY_FAILED = "apply_failed"  # a managed container's cgroup could not be pinned
INTERNAL = "internal"


class ProtocolError(Exception):
    """A frame or request that cannot be served; ``fatal`` ones end the connection (framing is
    lost, or the peer is not allowed)."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal


@dataclass(frozen=True)
class Frame:
    """One received frame: its payload (without prefix or newline) and how it was framed."""

    payload: bytes
    form: FrameForm


class FrameDecoder:
    """Bytes in, frames out. After an error the decoder stays broken: framing is lost, so the
    connection must be closed."""

    def __init__(self, max_size: int = MAX_FRAME) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self.broken = False

    @property
    def pending(self) -> int:
        """Bytes received that are not yet a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; returns the frames they complete, in order. Raises
        :class:`ProtocolError` (fatal) on an oversized frame."""
        if self.broken:
            raise ProtocolError(BAD_FRAME, "the connection's framing is already broken", fatal=True)
        self._buffer += data
        frames: list[Frame] = []
        while True:
            try:
                frame = self._next()
            except ProtocolError:
                self.broken = True
                raise
            if frame is None:
                return frames
            frames.append(frame)

    def close(self) -> None:
        """The peer closed its side; raises :class:`ProtocolError` when a frame was cut short."""
        if self._buffer and not self.broken:
            self.broken = True
            raise ProtocolError(BAD_FRAME, f"connection closed inside a frame ({len(self._buffer)} bytes pending)",
                                fatal=True)

    def _next(self) -> Frame | None:
        buffer = self._buffer
        if not buffer:
            return None
        if buffer[0] == ord("{"):
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > self.max_size:
                    raise _too_large(len(buffer), self.max_size)
                return None
            if end > self.max_size:
                raise _too_large(end, self.max_size)
            payload = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            return Frame(payload, "json-line")
        if len(buffer) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(buffer)
        if length > self.max_size:
            raise _too_large(length, self.max_size)
        if len(buffer) < HEADER.size + length:
            return None
        payload = bytes(buffer[HEADER.size : HEADER.size + length])
        del buffer[: HEADER.size + length]
        return Frame(payload, "json" if payload[:1] == b"{" else "msgpack")


def _too_large(size: int, limit: int) -> ProtocolError:
    return ProtocolError(TOO_LARGE, f"frame of {size} bytes is over the {limit}-byte limit", fatal=True)


# --- requests and responses -------------------------------------------------------------------


class _Tagged(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag=True, tag_field="type"):
    """Base of requests and responses: the ``type`` tag is the class name."""


class Admit(_Tagged, frozen=True, kw_only=True):
    """Admit pods, in order. Each entry is a Kubernetes Pod mapping (``metadata``/``spec``, API
    defaults applied as the CLI does) or the fields of a :class:`shim.pod.Pod`."""

    pods: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, pods: Iterable[Pod | Mapping[str, Any]]) -> Admit:
        # A Pod goes as the plain mapping it decodes to (lists, not tuples), so that a request
        # compares equal to itself after a round trip.
        return cls(pods=tuple(_plain(p) if isinstance(p, Pod) else dict(p) for p in pods))

    def to_pods(self) -> list[Pod]:
        """The pods; raises :class:`ProtocolError` naming the entry and the problem."""
        pods = []
        for index, entry in enumerate(self.pods):
            try:
                if "metadata" in entry or "spec" in entry:
                    pods.append(Pod.from_dict(entry, source=f"pods[{index}]"))
                else:
                    pods.append(msgspec.convert(entry, Pod))
            except (PodError, msgspec.ValidationError) as err:
                raise ProtocolError(BAD_REQUEST, f"pods[{index}]: {err}") from None
        return pods


def _plain(pod: Pod) -> dict[str, Any]:
    mapping: dict[str, Any] = msgspec.msgpack.decode(msgspec.msgpack.encode(pod))
    return mapping


class Remove(_Tagged, frozen=True, kw_only=True):
    """Remove a pod (``container`` None) or one of its containers."""

    pod_uid: str
    container: str | None = None


HookStage = Literal["createRuntime", "poststop"]


class HookEvent(_Tagged, frozen=True, kw_only=True):
    """An OCI hook fired. ``state`` is the OCI state the runtime gave the hook; the client fills
    what it could resolve (pod uid, container name, cgroup path, pid), otherwise the daemon reads
    the identity from ``annotations`` (then ``state["annotations"]``) and the pid from
    ``state["pid"]``. ``cgroup`` is required for ``createRuntime``: a hierarchy path (``/a/b``)
    or ``pid:<N>`` (shim.cgroups.backend).

    The daemon answers ``Ok`` with ``result["action"]`` one of:

    * ``{"action": "pinned", "pod_uid", "container", "cgroup", "cpus", "mems", "isolation",
      "cpu_quota"}``: createRuntime; the pod was admitted (now, if it was not yet: from the
      pods given over the socket or the daemon's ``--pod-dir``) and the cgroup is pinned;
    * ``{"action": "rejected", "pod_uid", "container", "reason", "message"}``: createRuntime;
      the pod's admission failed (kubelet reason and text): the hook must exit non-zero;
    * ``{"action": "released", "pod_uid", "container"}``: poststop of a managed container;
    * ``{"action": "skipped", "detail"}``: not podshim's (a sandbox, no pod annotations, an
      unknown pod or container): the hook exits 0 and the container runs as it is.

    A managed container that cannot be pinned is ``Error(code="apply_failed",
    message="<path>: <reason> (errno N)")``: the hook must exit non-zero.
    """

    stage: HookStage
    state: dict[str, Any] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    pod_uid: str | None = None
    container: str | None = None
    cgroup: str | None = None
    pid: int | None = None


class State(_Tagged, frozen=True, kw_only=True):
    """Current assignments and free pools (never waits for an admission in progress)."""


class Health(_Tagged, frozen=True, kw_only=True):
    """Is the daemon serving."""


Request: TypeAlias = Admit | Remove | HookEvent | State | Health


class Ok(_Tagged, frozen=True, kw_only=True):
    """The request was served; ``result`` is plain data (its shape depends on the request)."""

    result: Any = None


class Error(_Tagged, frozen=True, kw_only=True):
    """The request could not be served: a code from this module and a one-line message."""

    code: str
    message: str


Response: TypeAlias = Ok | Error

_msgpack_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()
_request_decoders = (msgspec.msgpack.Decoder(Request), msgspec.json.Decoder(Request))
_response_decoders = (msgspec.msgpack.Decoder(Response), msgspec.json.Decoder(Response))


def encode_frame(item: Request | Response, form: FrameForm = "msgpack") -> bytes:
    """The bytes of one frame holding ``item``."""
    if form == "msgpack":
        payload = _msgpack_encoder.encode(item)
    else:
        payload = _json_encoder.encode(item)
        if form == "json-line":
            return payload + b"\n"  # msgspec escapes newlines inside strings
    return HEADER.pack(len(payload)) + payload


def decode_request(frame: Frame) -> Request:
    """The request in a frame. Raises :class:`ProtocolError`: ``bad_frame`` (fatal) when the
    payload is not msgpack/JSON at all, ``bad_request`` when it is but is no valid request."""
    return _decode(frame, _request_decoders)  # type: ignore[return-value]


def decode_response(frame: Frame) -> Response:
    return _decode(frame, _response_decoders)  # type: ignore[return-value]


def _decode(frame: Frame, decoders: tuple[Any, Any]) -> object:
    decoder = decoders[0] if frame.form == "msgpack" else decoders[1]
    try:
        return decoder.decode(frame.payload)
    except msgspec.ValidationError as err:
        raise ProtocolError(BAD_REQUEST, f"invalid {frame.form} request: {err}") from None
    except msgspec.DecodeError as err:
        raise ProtocolError(BAD_FRAME, f"undecodable {frame.form} payload: {err}", fatal=True) from None


# --- the result of an admission, as the CLI prints it (DESIGN.md §4) --------------------------


def _hint_json(hint: HintWire | None) -> dict[str, Any] | None:
    if hint is None:
        return None
    return {"numa": None if hint.numa is None else list(hint.numa), "preferred": hint.preferred}


def pod_result(outcome: Admitted | Rejected) -> dict[str, Any]:
    """One entry of ``{"pods": [...]}``: uid, name, admitted, reason, message, hint, pod,
    containers (per container: name, kind, cpus, mems, isolation, cpu_quota)."""
    if isinstance(outcome, Rejected):
        return {
            "uid": outcome.pod_uid,
            "name": outcome.name,
            "admitted": False,
            "reason": outcome.reason,
            "message": outcome.message,
            "hint": _hint_json(outcome.hint),
            "pod": None,
            "containers": [],
        }
    bubble = outcome.pod
    pod: dict[str, Any] | None = None
    if bubble is not None:
        memory = bubble.memory
        pod = {
            "cpus": bubble.cpus,
            "memory": None if memory is None else {"numa": list(memory.numa), "bytes": memory.size},
        }
    return {
        "uid": outcome.pod_uid,
        "name": outcome.name,
        "admitted": True,
        "reason": "",
        "message": "",
        "hint": _hint_json(outcome.hint),
        "pod": pod,
        "containers": [
            {
                "name": c.name,
                "kind": c.kind,
                "cpus": c.cpus,
                "mems": c.mems,
                "isolation": c.isolation,
                "cpu_quota": c.cpu_quota,
            }
            for c in outcome.containers
        ],
    }
