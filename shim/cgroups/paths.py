"""Where a container's cgroup lives: mounts, /proc/<pid>/cgroup, OCI ``linux.cgroupsPath``.

Resolution order (runtime-integration.md §1.3): the init pid's ``/proc/<pid>/cgroup`` first (it
already names the leaf, including crun's ``/container`` sub-cgroup), then ``linux.cgroupsPath``
expanded the way runc does (systemd ``slice:prefix:name`` or a cgroupfs path). Every function
takes a ``root`` directory standing for ``/`` so tests can use fake trees, and every resulting
directory is confined under its cgroup mount: ``..`` components, and symlinks leading out of the
mount, are refused with :class:`CgroupPathError`.

Directories are plain strings (absolute when the mountpoints are, no trailing slash, no ``.`` or
``..`` components): the hook imports this module on every container start, and ``pathlib``
brings ``urllib.parse`` and ``ipaddress`` with it, about half a bare interpreter start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from shim.cgroups.values import FrozenRecord

CgroupVersion = Literal["v1", "v2"]
Driver = Literal["cgroupfs", "systemd"]
Runtime = Literal["runc", "crun"]
ContainerRuntime = Literal["containerd", "crio"]
QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]

# crun's annotation choosing the sub-cgroup under the systemd scope (default "container" on v2).
CRUN_SUBGROUP_ANNOTATION = "run.oci.systemd.subgroup"
CRUN_DEFAULT_SUBGROUP_V2 = "container"

_OCTAL_ESCAPE = r"\\([0-7]{3})"  # compiled on first use (re caches it): mountinfo rarely escapes


class CgroupPathError(ValueError):
    """A cgroup path that cannot be resolved or would leave its cgroup mount."""


# --------------------------------------------------------------------------------------------
# mounts


class CgroupMount(FrozenRecord):
    """One cgroup filesystem mount: v1 (a controller hierarchy) or v2 (the unified one)."""

    __slots__ = ("version", "mountpoint", "root", "controllers")  # noqa: RUF023 (field order: repr, eq, hash)
    version: CgroupVersion
    mountpoint: str
    # The hierarchy directory shown at the mountpoint ("/" unless a cgroup namespace or bind
    # mount shows a subtree).
    root: str
    # v1: the controllers bound to the hierarchy; v2: the content of cgroup.controllers, or
    # None when it could not be read.
    controllers: frozenset[str] | None

    def __init__(
        self, version: CgroupVersion, mountpoint: str | os.PathLike[str], root: str, controllers: frozenset[str] | None
    ) -> None:
        self._init(version, clean(mountpoint), root, controllers)


class CgroupMounts(FrozenRecord):
    """The cgroup mounts of a machine (or fake tree) and which one serves each controller."""

    __slots__ = ("v1", "unified")  # noqa: RUF023 (field order: repr, eq, hash)
    v1: tuple[CgroupMount, ...]
    unified: CgroupMount | None

    def __init__(self, v1: tuple[CgroupMount, ...], unified: CgroupMount | None) -> None:
        self._init(v1, unified)

    @property
    def mode(self) -> Literal["v1", "v2", "hybrid", "none"]:
        if self.v1 and self.unified is not None:
            return "hybrid"
        if self.v1:
            return "v1"
        return "v2" if self.unified is not None else "none"

    def for_controller(self, controller: str) -> CgroupMount:
        """The mount managing ``controller``: a v1 hierarchy that has it, else the unified one."""
        for mount in self.v1:
            if mount.controllers is not None and controller in mount.controllers:
                return mount
        unified = self.unified
        if unified is not None and (unified.controllers is None or controller in unified.controllers):
            return unified
        raise CgroupPathError(f"no cgroup mount provides the {controller} controller (mode {self.mode})")


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    return re.sub(_OCTAL_ESCAPE, lambda m: chr(int(m.group(1), 8)), field)


def clean(path: str | os.PathLike[str]) -> str:
    """``path`` without ``.`` components, repeated or trailing slashes (as pathlib spells a
    path); ``..`` components are kept, for :func:`confine` to refuse."""
    text = os.fspath(path)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    joined = "/".join(parts)
    if text.startswith("/"):
        return "/" + joined
    return joined or "."


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` (each relative, possibly several components) as one clean path."""
    return clean("/".join((base, *parts)))


def is_below(path: str, ancestor: str) -> bool:
    """Whether clean ``path`` lies strictly under clean ``ancestor`` (lexically)."""
    return path != ancestor and path.startswith(ancestor if ancestor.endswith("/") else ancestor + "/")


def under_mount(path: str, mount: str) -> str:
    """The hierarchy path of clean ``path`` as seen through clean ``mount`` ("/" for the mount
    itself, lexically); CgroupPathError when ``path`` is not under it."""
    if path == mount:
        return "/"
    if not is_below(path, mount):
        raise CgroupPathError(f"{path} is not under its cgroup mount {mount}")
    return path[len(mount.rstrip("/")) :]


def _rebase(root: str, absolute: str) -> str:
    return join(root, absolute) if absolute != "/" else root


def parse_mountinfo(text: str, root: str | os.PathLike[str] = "/") -> CgroupMounts:
    """Cgroup mounts from /proc/self/mountinfo text; mountpoints are rebased under ``root``."""
    base = clean(root)
    v1: list[CgroupMount] = []
    unified: CgroupMount | None = None
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 4:
            continue
        fstype, super_opts = fields[sep + 1], fields[sep + 3]
        mount_root, mountpoint = _unescape(fields[3]), _rebase(base, _unescape(fields[4]))
        if fstype == "cgroup":
            opts = {o for o in super_opts.split(",") if o not in ("rw", "ro")}
            # A bind mount of the same hierarchy adds nothing; the first (usually "/") wins.
            if any(m.controllers == frozenset(opts) for m in v1):
                continue
            v1.append(CgroupMount("v1", mountpoint, mount_root, frozenset(opts)))
        elif fstype == "cgroup2" and unified is None:
            unified = CgroupMount("v2", mountpoint, mount_root, _read_controllers(mountpoint))
    return CgroupMounts(tuple(v1), unified)


def _read_controllers(mountpoint: str) -> frozenset[str] | None:
    try:
        return frozenset(_read_text(join(mountpoint, "cgroup.controllers")).split())
    except OSError:
        return None


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def detect_mounts(root: str | os.PathLike[str] = "/") -> CgroupMounts:
    """Read ``<root>/proc/self/mountinfo`` and classify the cgroup mounts (v1, v2, hybrid)."""
    path = join(clean(root), "proc/self/mountinfo")
    try:
        text = _read_text(path)
    except OSError as exc:
        raise CgroupPathError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_mountinfo(text, root)


# --------------------------------------------------------------------------------------------
# confinement


def confine(mountpoint: str | os.PathLike[str], relative: str) -> str:
    """``mountpoint/relative`` after refusing any way out of the mount.

    ``relative`` is a hierarchy path ("/kubepods/pod1/abc" is relative to the mount, as the OCI
    spec and /proc/<pid>/cgroup mean it). ``..`` is refused outright rather than normalised, and
    symlinks are resolved and must stay under the (resolved) mountpoint.
    """
    text = str(relative)
    if "\x00" in text:
        raise CgroupPathError(f"cgroup path {text!r} contains a NUL byte")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CgroupPathError(f"cgroup path {text!r} contains '..'")
    real_mount = resolved(os.fspath(mountpoint))
    candidate = resolved(os.path.join(real_mount, *parts))
    if candidate != real_mount and not is_below(candidate, real_mount):
        raise CgroupPathError(f"cgroup path {text!r} escapes the cgroup mount {mountpoint} (resolves to {candidate})")
    return candidate


def resolved(path: str) -> str:
    """``os.path.realpath(path)``, from the kernel's own resolution when ``path`` exists: one
    ``open(O_PATH)`` and a readlink of its ``/proc/self/fd`` entry instead of an ``lstat`` per
    component (a confined apply resolves a dozen cgroup paths)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)  # missing (or unreachable): resolved lexically as far as it goes
    try:
        found = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        found = ""  # no /proc: the slow way
    finally:
        os.close(fd)
    return found if found.startswith("/") and not found.endswith(" (deleted)") else os.path.realpath(path)


def _strip_mount_root(path: str, mount: CgroupMount) -> str:
    # A hierarchy path is shown relative to the mount's root when the mount shows a subtree.
    if mount.root in ("/", ""):
        return path
    root = mount.root.rstrip("/")
    if path == root:
        return "/"
    if not path.startswith(root + "/"):
        raise CgroupPathError(
            f"cgroup path {path!r} is outside the mounted subtree {mount.root!r} at {mount.mountpoint}"
        )
    return path[len(root) :]


# --------------------------------------------------------------------------------------------
# locations


class ControllerPath(FrozenRecord):
    """A container's directory in one controller's hierarchy, confined under the mount."""

    __slots__ = ("controller", "version", "mount", "path")  # noqa: RUF023 (field order: repr, eq, hash)
    controller: str
    version: CgroupVersion
    mount: str
    path: str

    def __init__(
        self, controller: str, version: CgroupVersion, mount: str | os.PathLike[str], path: str | os.PathLike[str]
    ) -> None:
        mount, path = clean(mount), clean(path)
        under_mount(path, mount)
        self._init(controller, version, mount, path)

    @property
    def relative(self) -> str:
        """The hierarchy path as seen through the mount ("/" for the mount itself)."""
        return under_mount(self.path, self.mount)

    def ancestors(self) -> list[str]:
        """Directories between the mount (excluded) and this path (excluded), outermost first."""
        parts = self.relative.strip("/").split("/")
        return [join(self.mount, *parts[:i]) for i in range(1, len(parts))] if self.path != self.mount else []


class CgroupLocation(FrozenRecord):
    """A container's cgroup: the cpuset directory and the directory of the CPU quota files."""

    __slots__ = ("cpuset", "cpu")  # noqa: RUF023 (field order: repr, eq, hash)
    cpuset: ControllerPath
    cpu: ControllerPath

    def __init__(self, cpuset: ControllerPath, cpu: ControllerPath) -> None:
        self._init(cpuset, cpu)

    @classmethod
    def v1(
        cls, cpuset_mount: str | os.PathLike[str], cpu_mount: str | os.PathLike[str], relative: str
    ) -> CgroupLocation:
        """A v1 location from mountpoints and a hierarchy path (lexical; the tree need not exist)."""
        rel = _lexical(relative)
        cs, cp = clean(cpuset_mount), clean(cpu_mount)
        return cls(ControllerPath("cpuset", "v1", cs, join(cs, *rel)), ControllerPath("cpu", "v1", cp, join(cp, *rel)))

    @classmethod
    def v2(cls, mount: str | os.PathLike[str], relative: str) -> CgroupLocation:
        """A v2 location from the unified mountpoint and a hierarchy path (lexical)."""
        base = clean(mount)
        path = join(base, *_lexical(relative))
        return cls(ControllerPath("cpuset", "v2", base, path), ControllerPath("cpu", "v2", base, path))


def _lexical(relative: str) -> list[str]:
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CgroupPathError(f"cgroup path {relative!r} contains '..'")
    return parts


def _controller_path(mounts: CgroupMounts, controller: str, hierarchy_path: str) -> ControllerPath:
    mount = mounts.for_controller(controller)
    rel = _strip_mount_root(hierarchy_path, mount)
    return ControllerPath(controller, mount.version, mount.mountpoint, confine(mount.mountpoint, rel))


# --------------------------------------------------------------------------------------------
# /proc/<pid>/cgroup


class ProcCgroup(FrozenRecord):
    """Parsed /proc/<pid>/cgroup: v1 controller → path, and the v2 (``0::``) path if present."""

    __slots__ = ("v1", "unified")  # noqa: RUF023 (field order: repr, eq, hash)
    v1: Mapping[str, str]
    unified: str | None

    def __init__(self, v1: Mapping[str, str], unified: str | None) -> None:
        self._init(v1, unified)


def parse_proc_cgroup(text: str) -> ProcCgroup:
    """Parse ``hierarchy-ID:controller-list:path`` lines (v1 lines and the v2 ``0::`` line)."""
    v1: dict[str, str] = {}
    unified: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        pieces = line.split(":", 2)
        if len(pieces) != 3:
            raise CgroupPathError(f"malformed /proc/<pid>/cgroup line {line!r}")
        hid, controllers, path = pieces
        if hid == "0" and controllers == "":
            unified = path
            continue
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return ProcCgroup(v1, unified)


def read_proc_cgroup(pid: int, root: str | os.PathLike[str] = "/") -> ProcCgroup:
    """Read and parse ``<root>/proc/<pid>/cgroup``; OSError propagates (the process may be gone)."""
    return parse_proc_cgroup(_read_text(join(clean(root), f"proc/{pid}/cgroup")))


def location_from_proc(proc: ProcCgroup, mounts: CgroupMounts) -> CgroupLocation:
    """The cpuset and cpu directories of the process described by ``proc``."""

    def path_for(controller: str) -> ControllerPath:
        mount = mounts.for_controller(controller)
        if mount.version == "v1":
            hierarchy_path = proc.v1.get(controller)
            if hierarchy_path is None:
                raise CgroupPathError(f"/proc/<pid>/cgroup has no line for the v1 {controller} controller")
        else:
            if proc.unified is None:
                raise CgroupPathError("/proc/<pid>/cgroup has no cgroup v2 '0::' line")
            hierarchy_path = proc.unified
        return _controller_path(mounts, controller, hierarchy_path)

    return CgroupLocation(path_for("cpuset"), path_for("cpu"))


# --------------------------------------------------------------------------------------------
# OCI linux.cgroupsPath (runc's expansion rules)


def expand_slice(name: str) -> str:
    """systemd slice name → hierarchy path: ``a-b-c.slice`` → ``/a.slice/a-b.slice/a-b-c.slice``."""
    suffix = ".slice"
    if len(name) <= len(suffix) or not name.endswith(suffix) or "/" in name:
        raise CgroupPathError(f"invalid slice name: {name}")
    stem = name[: -len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if component == "":
            # "a--b.slice" and "-a.slice" name no slice.
            raise CgroupPathError(f"invalid slice name: {name}")
        path += f"/{prefix}{component}{suffix}"
        prefix += f"{component}-"
    return path


def systemd_unit_name(prefix: str, name: str) -> str:
    """The unit runc creates: a scope ``prefix-name.scope`` unless ``name`` is itself a slice."""
    return name if name.endswith(".slice") else f"{prefix}-{name}.scope"


def looks_systemd(cgroups_path: str) -> bool:
    """Whether a cgroupsPath is in the systemd ``slice:prefix:name`` form."""
    parts = cgroups_path.split(":")
    return len(parts) == 3 and not cgroups_path.startswith("/") and (parts[0] == "" or parts[0].endswith(".slice"))


def oci_hierarchy_path(
    cgroups_path: str,
    *,
    driver: Driver | None = None,
    version: CgroupVersion = "v2",
    runtime: Runtime = "runc",
    annotations: Mapping[str, str] | None = None,
    container_id: str | None = None,
) -> str:
    """The hierarchy path (relative to the cgroup mount) the runtime uses for ``cgroupsPath``.

    ``driver`` None guesses from the form. systemd: ``slice:prefix:name`` → expanded slice +
    unit (an empty slice is ``system.slice``; an empty value is ``system.slice:runc:<id>``).
    cgroupfs: the path itself (relative ones are taken from the hierarchy root). crun with the
    systemd driver adds the ``run.oci.systemd.subgroup`` sub-cgroup, ``container`` by default on v2.
    """
    if driver is None:
        driver = "systemd" if looks_systemd(cgroups_path) else "cgroupfs"
    if driver == "systemd":
        if cgroups_path == "":
            if not container_id:
                raise CgroupPathError("empty cgroupsPath and no container id")
            cgroups_path = f"system.slice:runc:{container_id}"
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise CgroupPathError(
                'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                f'got "{cgroups_path}" instead'
            )
        slice_name, prefix, name = parts
        if not name:
            raise CgroupPathError(f"cgroupsPath {cgroups_path!r} has an empty unit name")
        base = expand_slice(slice_name or "system.slice")
        path = f"{base.rstrip('/')}/{systemd_unit_name(prefix, name)}"
        if runtime == "crun":
            default = CRUN_DEFAULT_SUBGROUP_V2 if version == "v2" else ""
            subgroup = (annotations or {}).get(CRUN_SUBGROUP_ANNOTATION, default)
            if subgroup:
                path = f"{path}/{subgroup}"
    else:
        if cgroups_path == "":
            if not container_id:
                raise CgroupPathError("empty cgroupsPath and no container id")
            cgroups_path = container_id
        path = "/" + "/".join(_lexical(cgroups_path))
    _lexical(path)
    return path


def location_from_oci(
    cgroups_path: str,
    mounts: CgroupMounts,
    *,
    driver: Driver | None = None,
    runtime: Runtime = "runc",
    annotations: Mapping[str, str] | None = None,
    container_id: str | None = None,
) -> CgroupLocation:
    """The container's location from ``linux.cgroupsPath`` (see oci_hierarchy_path)."""
    found: dict[str, ControllerPath] = {}
    for controller in ("cpuset", "cpu"):
        version = mounts.for_controller(controller).version
        path = oci_hierarchy_path(
            cgroups_path,
            driver=driver,
            version=version,
            runtime=runtime,
            annotations=annotations,
            container_id=container_id,
        )
        found[controller] = _controller_path(mounts, controller, path)
    return CgroupLocation(found["cpuset"], found["cpu"])


def resolve_container(
    mounts: CgroupMounts,
    *,
    pid: int | None,
    cgroups_path: str | None,
    root: str | os.PathLike[str] = "/",
    driver: Driver | None = None,
    runtime: Runtime = "runc",
    annotations: Mapping[str, str] | None = None,
    container_id: str | None = None,
) -> CgroupLocation:
    """/proc/<pid>/cgroup when readable, else ``cgroupsPath``; CgroupPathError if neither works.

    A confinement error from /proc is not papered over by the fallback: it means the process
    sits somewhere podshim must not write.
    """
    problems: list[str] = []
    if pid is not None and pid > 0:
        try:
            return location_from_proc(read_proc_cgroup(pid, root), mounts)
        except OSError as exc:
            problems.append(f"/proc/{pid}/cgroup: {exc.strerror}")
    if cgroups_path is not None:
        return location_from_oci(
            cgroups_path, mounts, driver=driver, runtime=runtime, annotations=annotations, container_id=container_id
        )
    problems.append("no linux.cgroupsPath")
    raise CgroupPathError("cannot locate the container cgroup: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------
# naming used by kubelet and the CRI runtimes (for building expected paths)


def escape_pod_uid(uid: str) -> str:
    """systemd slice names use '-' as a separator, so the kubelet turns the UID's dashes into '_'."""
    return uid.replace("-", "_")


def kubelet_pod_cgroup(pod_uid: str, qos: QOSClass, driver: Driver) -> str:
    """The pod cgroup's hierarchy path that the kubelet creates (Guaranteed has no QoS level)."""
    level = {"Guaranteed": None, "Burstable": "burstable", "BestEffort": "besteffort"}[qos]
    if driver == "cgroupfs":
        return f"/kubepods/{level}/pod{pod_uid}" if level else f"/kubepods/pod{pod_uid}"
    qos_part = f"{level}-" if level else ""
    name = f"kubepods-{qos_part}pod{escape_pod_uid(pod_uid)}.slice"
    return expand_slice(name)


def names_pod(name: str, pod_uid: str) -> bool:
    """Whether a cgroup directory name is the kubelet's pod cgroup of ``pod_uid``: ``pod<uid>``
    (cgroupfs driver) or ``<parent>-pod<uid with _ for ->.slice`` (systemd driver)."""
    if not pod_uid or "/" in pod_uid:
        return False
    return name == f"pod{pod_uid}" or name.endswith(f"-pod{escape_pod_uid(pod_uid)}.slice")


def pod_cgroup_dir(container: ControllerPath, pod_uid: str) -> str | None:
    """The directory of the pod cgroup holding ``container`` in the same hierarchy, or None.

    Only the layouts the kubelet and the runtimes create count: the container directly under
    the pod cgroup (cgroupfs ``…/pod<uid>/<ctr>``, systemd ``…/kubepods-…-pod<uid_>.slice/
    <runtime>-<id>.scope``), or one level further down in a systemd scope (crun's sub-cgroup,
    ``…/<scope>/container``). A parent that does not name ``pod_uid`` gives None: podshim never
    writes a cgroup it cannot tell is the pod's own.
    """
    parts = [part for part in container.relative.split("/") if part]
    if len(parts) >= 2 and names_pod(parts[-2], pod_uid):
        return join(container.mount, *parts[:-1])
    if len(parts) >= 3 and parts[-2].endswith(".scope") and names_pod(parts[-3], pod_uid):
        return join(container.mount, *parts[:-2])
    return None


def cri_cgroups_path(parent: str, container_id: str, runtime: ContainerRuntime) -> str:
    """The ``linux.cgroupsPath`` containerd or CRI-O gives a container under ``parent``.

    A parent whose last element ends in ``.slice`` selects the systemd form.
    """
    base = parent.rstrip("/").rsplit("/", 1)[-1]
    if base.endswith(".slice"):
        prefix = "cri-containerd" if runtime == "containerd" else "crio"
        return f"{base}:{prefix}:{container_id}"
    name = container_id if runtime == "containerd" else f"crio-{container_id}"
    return f"{parent.rstrip('/')}/{name}"


PID_PREFIX = "pid:"
"""A cgroup named by a process (``pid:<n>``) rather than by a hierarchy path."""


def cgroup_string(location: CgroupLocation, pid: int | None = None) -> str:
    """The string that names ``location`` for :class:`FsCgroupBackend`: the hierarchy path when
    the cpuset and cpu directories agree, else ``pid:<pid>`` (ValueError without a pid)."""
    cpuset, cpu = location.cpuset.relative, location.cpu.relative
    if cpuset == cpu:
        return cpuset
    if pid is None or pid <= 0:
        raise ValueError(f"cpuset ({cpuset}) and cpu ({cpu}) hierarchy paths differ and no pid names them")
    return f"{PID_PREFIX}{pid}"
