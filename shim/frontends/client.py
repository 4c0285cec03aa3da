"""A blocking client of the podshim daemon (``podshim hook --socket``, ``podshim admit --socket``).

Two ways to talk, both over the standard socket module (never trio):

* :class:`Client` speaks msgpack through :mod:`shim.frontends.protocol` (msgspec), imported on
  first use: the CLI's ``admit``/``remove``/``state --socket``.
* :func:`hook_event` sends one ``HookEvent`` as a length-prefixed JSON frame and reads the
  daemon's JSON reply, both through :mod:`shim.frontends.plainjson`. The OCI hook runs once per
  container start: it must not pay for msgspec, the pod model, trio, or even ``json``'s regular
  expressions.

Every failure is a :class:`DaemonError` whose text is one line naming the socket.
"""

from __future__ import annotations

# The C module under ``socket``: importing ``socket`` itself builds its enums (a few ms of the
# hook's start-up); these sockets need only connect, send, receive and close.
import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from shim.frontends.protocol import Error, FrameDecoder, HookEvent, Request, Response
    from shim.pod import Pod

DEFAULT_TIMEOUT = 30.0
# The protocol's frame header (protocol.HEADER: a 4-byte big-endian length, read and written
# with int.from_bytes/to_bytes, not struct: one module less for the hook) and the largest reply
# a client accepts (protocol.MAX_RESPONSE); repeated so the JSON path does not import the
# protocol module.
_HEADER_SIZE = 4
_MAX_RESPONSE = 64 << 20


class DaemonError(Exception):
    """The daemon could not be asked or did not answer (one line)."""


class DaemonUnreachable(DaemonError):
    """No daemon accepted the connection (socket missing, refused, timed out): nothing was sent."""


class RequestFailed(DaemonError):
    """The daemon answered with an Error response; ``code`` and ``message`` are its fields and
    ``error`` the :class:`~shim.frontends.protocol.Error` itself (a :class:`WireError` on the
    JSON path)."""

    def __init__(self, error: Error | WireError) -> None:
        super().__init__(f"podshim daemon: {error.code}: {error.message}")
        self.error = error
        self.code = error.code
        self.message = error.message


class WireError:
    """An Error response read by the JSON path (the fields of protocol.Error)."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"WireError(code={self.code!r}, message={self.message!r})"


def _connect(path: str, timeout: float | None) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise DaemonUnreachable(f"podshim daemon not reachable at {path}: {_reason(err)}") from None
    return sock


class Client:
    """One connection to the daemon at ``path``; requests are answered in order. Use it as a
    context manager, or call :meth:`close`."""

    def __init__(self, path: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        from shim.frontends.protocol import MAX_RESPONSE, FrameDecoder

        self.path = path
        self._decoder: FrameDecoder = FrameDecoder(MAX_RESPONSE)
        self._sock = _connect(path, timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests send malformed frames with it)."""
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise DaemonError(f"podshim daemon at {self.path}: send failed: {_reason(err)}") from None

    def receive(self) -> Response:
        """The next response frame."""
        from shim.frontends.protocol import ProtocolError, decode_response

        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError as err:
                raise DaemonError(f"podshim daemon at {self.path}: no answer: {_reason(err)}") from None
            try:
                if not chunk:
                    self._decoder.close()
                    raise DaemonError(f"podshim daemon at {self.path} closed the connection")
                frames = self._decoder.feed(chunk)
                if frames:
                    if len(frames) > 1:
                        raise DaemonError(f"podshim daemon at {self.path}: unexpected extra response")
                    return decode_response(frames[0])
            except ProtocolError as err:
                raise DaemonError(f"podshim daemon at {self.path}: {err.message}") from None

    def call(self, request: Request) -> Response:
        """Send one request and return the response (Ok or Error)."""
        from shim.frontends.protocol import encode_frame

        self.send_raw(encode_frame(request))
        return self.receive()

    def result(self, request: Request) -> Any:
        """The ``result`` of an Ok response; an Error response raises :class:`RequestFailed`."""
        from shim.frontends.protocol import Ok

        response = self.call(request)
        if isinstance(response, Ok):
            return response.result
        raise RequestFailed(response)

    # conveniences -------------------------------------------------------------------------
    def admit(self, pods: Iterable[Pod | Mapping[str, Any]]) -> Any:
        """``{"pods": [...]}`` as ``podshim admit --output json`` prints it."""
        from shim.frontends.protocol import Admit

        return self.result(Admit.of(pods))

    def remove(self, pod_uid: str, container: str | None = None) -> Any:
        from shim.frontends.protocol import Remove

        return self.result(Remove(pod_uid=pod_uid, container=container))

    def hook(self, event: HookEvent) -> Any:
        return self.result(event)

    def state(self) -> Any:
        from shim.frontends.protocol import State

        return self.result(State())

    def health(self) -> Any:
        from shim.frontends.protocol import Health

        return self.result(Health())


def _reason(err: OSError) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    return err.strerror or type(err).__name__


def request(path: str, request: Request, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    """One request on a fresh connection; returns the Ok result or raises :class:`DaemonError`."""
    with Client(path, timeout=timeout) as client:
        return client.result(request)


# --- the hook's JSON path ---------------------------------------------------------------------


def hook_event_payload(
    stage: str,
    *,
    state: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    pod_uid: str | None = None,
    container: str | None = None,
    cgroup: str | None = None,
    pid: int | None = None,
) -> bytes:
    """The JSON payload of a ``HookEvent`` request (protocol.HookEvent's fields, tagged with
    ``"type": "HookEvent"``; the daemon rejects unknown fields)."""
    from shim.frontends import plainjson

    event = {
        "type": "HookEvent",
        "stage": stage,
        "state": dict(state or {}),
        "annotations": dict(annotations or {}),
        "pod_uid": pod_uid,
        "container": container,
        "cgroup": cgroup,
        "pid": pid,
    }
    return plainjson.dumps(event, ensure_ascii=False).encode()


def json_call(path: str, payload: bytes, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    """Send one JSON request payload as a length-prefixed frame on a fresh connection and return
    the ``result`` of the daemon's Ok reply; an Error reply raises :class:`RequestFailed`, any
    other failure :class:`DaemonError`."""
    from shim.frontends import plainjson

    sock = _connect(path, timeout)
    try:
        try:
            sock.sendall(len(payload).to_bytes(_HEADER_SIZE, "big") + payload)
            reply = _receive_frame(sock, path)
        except OSError as err:
            raise DaemonError(f"podshim daemon at {path}: no answer: {_reason(err)}") from None
    finally:
        sock.close()
    try:
        document = plainjson.loads(reply)
    except (ValueError, UnicodeDecodeError) as err:
        raise DaemonError(f"podshim daemon at {path}: undecodable reply: {err}") from None
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Ok":
        return document.get("result")
    if kind == "Error":
        raise RequestFailed(WireError(str(document.get("code", "")), str(document.get("message", ""))))
    raise DaemonError(f"podshim daemon at {path}: unexpected reply {str(document)[:80]!r}")


def _receive_frame(sock: _socket.socket, path: str) -> bytes:
    # One length-prefixed frame. A daemon that refuses a peer (or a frame) sends its Error and
    # closes, so a short read is an error naming what was missing.
    buffer = bytearray()
    need = _HEADER_SIZE
    length: int | None = None
    while True:
        while len(buffer) < need:
            chunk = sock.recv(max(65536, need - len(buffer)))
            if not chunk:
                what = "a reply" if not buffer else f"the reply ({len(buffer)} of {need} bytes)"
                raise DaemonError(f"podshim daemon at {path} closed the connection before {what}")
            buffer += chunk
        if length is not None:
            return bytes(buffer[_HEADER_SIZE:need])
        if buffer[:1] == b"{":
            raise DaemonError(f"podshim daemon at {path}: reply without a length prefix")
        length = int.from_bytes(buffer[:_HEADER_SIZE], "big")
        if length > _MAX_RESPONSE:
            raise DaemonError(f"podshim daemon at {path}: reply of {length} bytes is over the limit")
        need = _HEADER_SIZE + length


def hook_event(
    path: str,
    stage: str,
    *,
    state: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    pod_uid: str | None = None,
    container: str | None = None,
    cgroup: str | None = None,
    pid: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Any:
    """Tell the daemon at ``path`` that a hook fired (JSON framing, standard library only);
    returns the Ok reply's ``result`` (``{"action": ..., ...}``)."""
    payload = hook_event_payload(
        stage, state=state, annotations=annotations, pod_uid=pod_uid, container=container, cgroup=cgroup, pid=pid
    )
    return json_call(path, payload, timeout=timeout)


__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "DaemonError",
    "DaemonUnreachable",
    "RequestFailed",
    "WireError",
    "hook_event",
    "hook_event_payload",
    "json_call",
    "request",
]
