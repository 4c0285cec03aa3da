"""A blocking client of the podshim daemon (``podshim hook --socket``, ``podshim admit --socket``).

Only the standard socket module and msgspec: the OCI hook runs once per container start, and
importing trio would cost it tens of milliseconds. Every failure is a :class:`DaemonError` whose
text is one line naming the socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from typing import Any

from shim.frontends.protocol import (
    MAX_RESPONSE,
    Admit,
    Error,
    FrameDecoder,
    Health,
    HookEvent,
    Ok,
    ProtocolError,
    Remove,
    Request,
    Response,
    State,
    decode_response,
    encode_frame,
)
from shim.pod import Pod

DEFAULT_TIMEOUT = 30.0


class DaemonError(Exception):
    """The daemon could not be asked or did not answer (one line)."""


class RequestFailed(DaemonError):
    """The daemon answered with an :class:`~shim.frontends.protocol.Error`."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"podshim daemon: {error.code}: {error.message}")
        self.error = error


class Client:
    """One connection to the daemon at ``path``; requests are answered in order. Use it as a
    context manager, or call :meth:`close`."""

    def __init__(self, path: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self._decoder = FrameDecoder(MAX_RESPONSE)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as err:
            self._sock.close()
            raise DaemonError(f"podshim daemon not reachable at {path}: {_reason(err)}") from None

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
        self.send_raw(encode_frame(request))
        return self.receive()

    def result(self, request: Request) -> Any:
        """The ``result`` of an Ok response; an Error response raises :class:`RequestFailed`."""
        response = self.call(request)
        if isinstance(response, Ok):
            return response.result
        raise RequestFailed(response)

    # conveniences -------------------------------------------------------------------------
    def admit(self, pods: Iterable[Pod | Mapping[str, Any]]) -> Any:
        """``{"pods": [...]}`` as ``podshim admit --output json`` prints it."""
        return self.result(Admit.of(pods))

    def remove(self, pod_uid: str, container: str | None = None) -> Any:
        return self.result(Remove(pod_uid=pod_uid, container=container))

    def hook(self, event: HookEvent) -> Any:
        return self.result(event)

    def state(self) -> Any:
        return self.result(State())

    def health(self) -> Any:
        return self.result(Health())


def _reason(err: OSError) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    return err.strerror or type(err).__name__


def request(path: str, request: Request, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    """One request on a fresh connection; returns the Ok result or raises :class:`DaemonError`."""
    with Client(path, timeout=timeout) as client:
        return client.result(request)
