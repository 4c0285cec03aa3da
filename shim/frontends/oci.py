"""The OCI side of a hook: the runtime state on stdin, the bundle's ``config.json``, and who a
container is from its annotations (runtime-integration.md §1.2, §1.3, §2).

Identity keys, first match wins per field: podshim's own (``podshim.io/pod-uid``,
``podshim.io/container``), then containerd's CRI plugin (``io.kubernetes.cri.sandbox-uid``,
``io.kubernetes.cri.container-name``), then CRI-O's copies of the kubelet labels
(``io.kubernetes.pod.uid``, ``io.kubernetes.container.name``). A sandbox (pause container) is
recognised by containerd's ``io.kubernetes.cri.container-type`` or CRI-O's
``io.kubernetes.cri-o.ContainerType`` being ``sandbox`` (and cri-dockerd's ``podsandbox``).

Only :mod:`shim.frontends.plainjson` is imported (no json, dataclasses, typing or pathlib at
run time): the hook and the
runtime wrapper run once per container, and each of those modules costs milliseconds to load.
"""

from __future__ import annotations

import os

from shim.frontends import plainjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

PODSHIM_POD_UID = "podshim.io/pod-uid"
PODSHIM_CONTAINER = "podshim.io/container"
CRI_SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
CRI_CONTAINER_NAME = "io.kubernetes.cri.container-name"
CRI_CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CRIO_POD_UID = "io.kubernetes.pod.uid"
CRIO_CONTAINER_NAME = "io.kubernetes.container.name"
CRIO_CONTAINER_TYPE = "io.kubernetes.cri-o.ContainerType"
DOCKER_CONTAINER_TYPE = "io.kubernetes.docker.type"

POD_UID_KEYS = (PODSHIM_POD_UID, CRI_SANDBOX_UID, CRIO_POD_UID)
CONTAINER_KEYS = (PODSHIM_CONTAINER, CRI_CONTAINER_NAME, CRIO_CONTAINER_NAME)
_SANDBOX_TYPES = {CRI_CONTAINER_TYPE: "sandbox", CRIO_CONTAINER_TYPE: "sandbox", DOCKER_CONTAINER_TYPE: "podsandbox"}


class OCIError(ValueError):
    """Malformed hook input; ``str`` is one line naming the input and the problem."""


class _Record:
    """A small immutable record: fields in ``__slots__``, compared and printed by value (what a
    frozen dataclass gives, without importing dataclasses on the hook's start-up path)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(tuple(v if not isinstance(v, dict) else tuple(sorted(v.items())) for v in self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"


class OCIState(_Record):
    """The state a runtime passes to a hook. ``pid`` is None when absent or 0 (crun gives 0 to
    container-namespace hooks); ``root`` is crun's extra rootfs key (runc does not send it);
    ``document`` is the whole JSON object as received (the daemon client forwards it)."""

    _fields = ("id", "status", "bundle", "pid", "annotations", "root", "document")
    __slots__ = _fields
    id: str
    status: str
    bundle: str
    pid: int | None
    annotations: Mapping[str, str]
    root: str | None
    document: Mapping[str, Any]

    def __init__(
        self,
        id: str,
        status: str,
        bundle: str,
        pid: int | None = None,
        annotations: Mapping[str, str] | None = None,
        root: str | None = None,
        document: Mapping[str, Any] | None = None,
    ) -> None:
        self._set(id=id, status=status, bundle=bundle, pid=pid, annotations={} if annotations is None else annotations,
                  root=root, document={} if document is None else document)


class BundleConfig(_Record):
    """What a hook needs from ``<bundle>/config.json``."""

    _fields = ("path", "annotations", "cgroups_path", "document")
    __slots__ = _fields
    path: str
    annotations: Mapping[str, str]
    cgroups_path: str | None
    document: Mapping[str, Any]

    def __init__(
        self, path: str, annotations: Mapping[str, str], cgroups_path: str | None, document: Mapping[str, Any]
    ) -> None:
        self._set(path=path, annotations=annotations, cgroups_path=cgroups_path, document=document)


class Identity(_Record):
    """Who a container is. ``pod_uid``/``container`` are None when no known key names them."""

    _fields = ("pod_uid", "container", "sandbox")
    __slots__ = _fields
    pod_uid: str | None
    container: str | None
    sandbox: bool

    def __init__(self, pod_uid: str | None, container: str | None, sandbox: bool) -> None:
        self._set(pod_uid=pod_uid, container=container, sandbox=sandbox)

    @property
    def is_pod_container(self) -> bool:
        """A Kubernetes (or podshim-labelled) app/init container, not a sandbox."""
        return not self.sandbox and bool(self.pod_uid) and bool(self.container)


def _annotations(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise OCIError(f"{where}: annotations must be an object, got {type(raw).__name__}")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise OCIError(f"{where}: annotation {key!r} must be a string, got {type(value).__name__}")
        out[str(key)] = value
    return out


def _object(text: str | bytes, where: str) -> Mapping[str, Any]:
    try:
        document = plainjson.loads(text)
    except ValueError as err:  # json.JSONDecodeError and UnicodeDecodeError both are
        raise OCIError(f"{where}: invalid JSON: {err}") from None
    if not isinstance(document, dict):
        raise OCIError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document


def parse_state(text: str | bytes, *, where: str = "OCI state (stdin)") -> OCIState:
    """Parse the hook's stdin. ``bundle`` is required (legacy ``bundlePath`` accepted, as the
    nvidia hook does); the status string is kept but callers must not key logic on it (§1.2)."""
    if not text or not text.strip():
        raise OCIError(f"{where}: empty input (is this program running as an OCI hook?)")
    document = _object(text, where)
    bundle = document.get("bundle") or document.get("bundlePath")
    if not isinstance(bundle, str) or not bundle:
        raise OCIError(f"{where}: missing 'bundle'")
    if not bundle.startswith("/"):
        raise OCIError(f"{where}: 'bundle' must be an absolute path, got {bundle!r}")
    container_id = document.get("id")
    if not isinstance(container_id, str) or not container_id:
        raise OCIError(f"{where}: missing 'id'")
    pid = document.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid < 0):
        raise OCIError(f"{where}: 'pid' must be a non-negative integer, got {pid!r}")
    status = document.get("status", "")
    root = document.get("root")
    return OCIState(
        id=container_id,
        status=status if isinstance(status, str) else "",
        bundle=bundle,
        pid=pid or None,
        annotations=_annotations(document.get("annotations"), where),
        root=root if isinstance(root, str) else None,
        document=document,
    )


def parse_config(text: str | bytes, *, where: str) -> BundleConfig:
    """The fields of a bundle ``config.json`` podshim uses."""
    document = _object(text, where)
    linux = document.get("linux")
    if linux is not None and not isinstance(linux, dict):
        raise OCIError(f"{where}: 'linux' must be an object")
    cgroups_path = (linux or {}).get("cgroupsPath")
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise OCIError(f"{where}: linux.cgroupsPath must be a string, got {cgroups_path!r}")
    return BundleConfig(where, _annotations(document.get("annotations"), where), cgroups_path, document)


def config_path(bundle: str | Path) -> Path:
    from pathlib import Path

    return Path(bundle) / "config.json"


def load_config(bundle: str | Path) -> BundleConfig:
    """Read ``<bundle>/config.json``; OCIError names the file when it is missing or malformed."""
    path = os.path.join(os.fspath(bundle), "config.json")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as err:
        raise OCIError(f"{path}: cannot read: {err.strerror}") from None
    return parse_config(data, where=path)


def merged_annotations(state: OCIState, config: BundleConfig | None) -> dict[str, str]:
    """config.json annotations overlaid with the state's (runtimes copy them; the state wins)."""
    out = dict(config.annotations) if config is not None else {}
    out.update(state.annotations)
    return out


def _first(annotations: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = annotations.get(key, "").strip()
        if value:
            return value
    return None


def is_sandbox(annotations: Mapping[str, str]) -> bool:
    """The pod's sandbox (pause) container, as containerd, CRI-O or cri-dockerd mark it."""
    return any(annotations.get(key) == value for key, value in _SANDBOX_TYPES.items())


def identify(annotations: Mapping[str, str]) -> Identity:
    """Pod uid, container name and sandbox flag from a container's annotations."""
    return Identity(_first(annotations, POD_UID_KEYS), _first(annotations, CONTAINER_KEYS), is_sandbox(annotations))


__all__ = [
    "BundleConfig",
    "Identity",
    "OCIError",
    "OCIState",
    "config_path",
    "identify",
    "is_sandbox",
    "load_config",
    "merged_annotations",
    "parse_config",
    "parse_state",
]
