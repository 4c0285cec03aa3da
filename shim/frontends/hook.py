"""``podshim hook STAGE``: the OCI runtime hook, embedded mode (no daemon).

Installed for ``createRuntime`` and ``poststop`` (hooks.d file, or the ``podshim-runc``
wrapper). The runtime gives the container's state on stdin; the hook reads
``<bundle>/config.json`` and identifies the pod and container from their annotations
(shim.frontends.oci).

* ``createRuntime``: the pod's spec is looked up in ``--pod-dir`` by uid; no such pod (or a
  sandbox, or no pod annotations) means the container is not podshim's: exit 0 and nothing is
  written. Otherwise, holding the state-directory lock, the node is opened from the state
  files, the pod admitted (re-admitting a pod already in the state restores it), and the
  container's cgroup pinned (cpuset.cpus, cpuset.mems, CFS quota, thread affinity). A rejected
  pod exits 1 and a container that cannot be pinned exits 3, each with one line on stderr, so
  the runtime fails the create and the container never runs unpinned.
* ``poststop``: the container is removed; the pod's bubble returns to the node with its last
  container.

Stages: ``prestart`` is accepted as an alias of ``createRuntime`` (same namespaces, cgroups
already applied, runtime-integration.md §1.1; older setups install that one).
``createContainer``, ``startContainer`` and ``poststart`` are refused: the first two run in the
container's mount namespace, where the host's cgroup tree and the state directory are not
guaranteed to be visible, and pinning after start would let the process run unpinned.

Embedded mode has no reconcile loop, so the hook keeps a registry of the containers it pinned
and re-applies those whose placement changed when an admission or a release changes the node's
shared pool (shim.frontends.hook_registry).

Client mode (``--socket PATH``): the hook resolves the container's identity and cgroup itself
and sends one ``HookEvent`` to ``podshim serve`` (shim.frontends.client, JSON framing), then
exits by the daemon's answer; see :func:`run_client`. When the daemon cannot be reached the hook
fails (exit 3), unless ``--state-dir`` is also given: it then runs in embedded mode.

Installed as ``podshim-hook`` (scripts/podshim-hook, which calls :func:`main`) as well as
``podshim hook``. A plain command line is parsed here (:func:`parse_argv`), without argparse;
only the standard library, shim.frontends.oci and shim.frontends.plainjson are imported until
the container is known to be managed, and in client mode nothing more; the node, msgspec and
YAML come in after that. In embedded mode the parsed config, the sysfs topology and the pod
index are cached in the state directory (shim.frontends.hookcache), so a warm call parses no
YAML and walks no sysfs.
"""

from __future__ import annotations

import os
import sys

from shim.frontends import oci
from shim.frontends.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    RuntimeFailure,
    UsageError,
    guarded,
)

TYPE_CHECKING = False  # mypy treats the name as true; typing is not imported at run time
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Sequence
    from pathlib import Path
    from typing import Any

    from shim.actors.stores import FileCheckpointStore
    from shim.cgroups.backend import FsCgroupBackend
    from shim.cgroups.paths import CgroupMounts
    from shim.frontends.hook_registry import Registry
    from shim.frontends.hookcache import HookCache
    from shim.pod import Pod
    from shim.runtime.node import Node

CREATE, STOP = "create", "stop"
STAGES = {"createRuntime": CREATE, "prestart": CREATE, "poststop": STOP}
REFUSED_STAGES = {
    "createContainer": "runs in the container's mount namespace; install podshim for createRuntime",
    "startContainer": "runs in the container's namespaces; install podshim for createRuntime",
    "poststart": "the process already runs unpinned; install podshim for createRuntime",
}
DEFAULT_STATE_DIR = "/var/lib/podshim"
DEFAULT_POD_DIR = "/etc/podshim/pods"
POD_SUFFIXES = (".yaml", ".yml", ".json")


class HookFailed(Exception):
    """The container must not start (or stop handling failed); ``code`` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class HookArgs:
    """The hook's options, parsed by :func:`parse_argv` (or taken from argparse's Namespace)."""

    __slots__ = ("config", "pod_dir", "socket", "stage", "state_dir", "sysfs_root", "timeout", "topology")

    def __init__(
        self,
        stage: str,
        *,
        socket: str | None = None,
        timeout: float | None = None,
        config: str | None = None,
        state_dir: str | None = None,
        pod_dir: str = DEFAULT_POD_DIR,
        topology: str | None = None,
        sysfs_root: str | None = None,
    ) -> None:
        self.stage = stage
        self.socket = socket
        self.timeout = timeout
        self.config = config
        self.state_dir = state_dir
        self.pod_dir = pod_dir
        self.topology = topology
        self.sysfs_root = sysfs_root

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> HookArgs:
        return cls(**{name: getattr(namespace, name) for name in cls.__slots__})

    @property
    def state_path(self) -> str:
        """The state directory embedded mode uses (``--state-dir``, or the default)."""
        return DEFAULT_STATE_DIR if self.state_dir is None else self.state_dir

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HookArgs):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"HookArgs({fields})"


_VALUED = {"--socket": "socket", "--timeout": "timeout", "--config": "config", "--state-dir": "state_dir",
           "--pod-dir": "pod_dir", "--topology": "topology", "--sysfs-root": "sysfs_root"}


def parse_argv(argv: Sequence[str]) -> HookArgs | None:
    """The options of a plain, well-formed hook command line (``--name VALUE`` or
    ``--name=VALUE`` for the exact option names, one STAGE), or None for anything else: help,
    an unknown or abbreviated option, a missing or dash-leading value, a bad number, both
    topology sources. None sends the command line to argparse (``podshim hook``'s parser), which
    then parses it or reports the error, so both read every command line the same way; argparse
    itself costs the hook more than starting the interpreter does."""
    values: dict[str, str] = {}
    stages = []
    timeout = None
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            stages.append(word)
            continue
        name, equals, value = word.partition("=")
        if name not in _VALUED:
            return None
        if not equals:
            value = next(words, "-")
            if value.startswith("-"):
                return None
        if name == "--timeout":
            # argparse converts every occurrence, not only the last one that wins
            try:
                timeout = float(value)
            except ValueError:
                return None
        values[_VALUED[name]] = value
    if len(stages) != 1 or ("topology" in values and "sysfs_root" in values):
        return None
    values.pop("timeout", None)
    return HookArgs(stages[0], timeout=timeout, **values)


def main(argv: Sequence[str] | None = None) -> int:
    """``podshim hook ARGS`` (also installed as ``podshim-hook ARGS``): the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = parse_argv(words)
    if args is None:
        from shim.frontends.cli import main as cli_main

        return cli_main(["hook", *words], fast_hook=False)
    return guarded(sys.stderr, run, args)


def configure(parser: argparse.ArgumentParser) -> None:
    from shim.frontends.cli import add_topology_source

    parser.add_argument(
        "stage",
        metavar="STAGE",
        help="createRuntime (alias prestart) or poststop; the OCI state is read from stdin",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="ask the podshim daemon listening here instead of deciding in this process (with --state-dir: "
        "fall back to embedded mode when the daemon is not reachable)",
    )
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=None,
        help="how long to wait for the daemon's answer (default 30)",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="KubeletConfiguration, YAML or JSON by suffix (.json: faster start-up) (default: podshim's defaults)",
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", default=None, help=f"state files (default {DEFAULT_STATE_DIR})"
    )
    parser.add_argument(
        "--pod-dir",
        metavar="DIR",
        default=DEFAULT_POD_DIR,
        help=f"pod specs (YAML/JSON), looked up by uid (default {DEFAULT_POD_DIR})",
    )
    add_topology_source(parser)


def stage_kind(stage: str) -> str:
    """CREATE or STOP for a stage name; UsageError for the others."""
    if stage in STAGES:
        return STAGES[stage]
    if stage in REFUSED_STAGES:
        raise UsageError(f"hook stage {stage} is not supported: {REFUSED_STAGES[stage]}")
    raise UsageError(f"unknown hook stage {stage!r} (expected createRuntime, prestart or poststop)")


def run_namespace(args: argparse.Namespace) -> int:
    """``run`` for the options as argparse parsed them."""
    return run(HookArgs.from_namespace(args))


def run(args: HookArgs) -> int:
    kind = stage_kind(args.stage)
    try:
        state = oci.parse_state(sys.stdin.buffer.read())
        bundle = oci.load_config(state.bundle)
    except oci.OCIError as err:
        raise UsageError(str(err)) from None
    identity = oci.identify(oci.merged_annotations(state, bundle))
    if not identity.is_pod_container:
        return EXIT_OK
    assert identity.pod_uid is not None and identity.container is not None
    try:
        if args.socket is not None:
            code = run_client(args, kind, state, bundle, identity.pod_uid, identity.container)
            if code is not None:
                return code
        if kind == CREATE:
            return _create(args, state, bundle, identity.pod_uid, identity.container)
        return _stop(args, identity.pod_uid, identity.container)
    except HookFailed as failed:
        _say(str(failed))
        return failed.code


def _say(message: str) -> None:
    sys.stderr.write(" ".join(f"podshim hook: {message}".split()) + "\n")


# ---------------------------------------------------------------------------------------------
# client mode


def run_client(
    args: HookArgs, kind: str, state: oci.OCIState, bundle: oci.BundleConfig, uid: str, name: str
) -> int | None:
    """Send the event to the daemon at ``args.socket``; the exit code, or None to fall back to
    embedded mode (daemon unreachable and ``--state-dir`` given).

    Request: ``HookEvent(stage, state=<the OCI state as received>, annotations=<config.json's
    overlaid with the state's>, pod_uid, container, cgroup, pid)``; at createRuntime ``cgroup``
    is the hierarchy path (or ``pid:<N>``) resolved here as embedded mode would, at poststop it
    is None. Reply: ``Ok(result)``, where ``result["action"]`` is ``"rejected"`` → exit 1 with
    ``result["message"]``, anything else (``pinned``, ``released``, ``skipped``) → exit 0; an
    ``Error(code, message)`` → exit 3 (2 for ``bad_request``).
    """
    from shim.frontends import client

    assert args.socket is not None
    stage = "poststop" if kind == STOP else "createRuntime"
    cgroup = None
    problem = None
    if kind == CREATE:
        try:
            cgroup = quick_cgroup(state.pid) or _resolve_cgroup(_host_mounts(), "/", state, bundle)
        except HookFailed as failed:
            # Let the daemon judge: it skips containers it does not manage; for one it does,
            # it answers an error and the hook fails with this reason too.
            problem = str(failed)
    timeout = client.DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    try:
        result = client.hook_event(
            args.socket, stage, state=state.document, annotations=oci.merged_annotations(state, bundle),
            pod_uid=uid, container=name, cgroup=cgroup, pid=state.pid, timeout=timeout,
        )
    except client.DaemonUnreachable as err:
        if args.state_dir is not None:
            _say(f"warning: {err}; deciding in embedded mode")
            return None
        raise HookFailed(EXIT_FAILURE, str(err)) from None
    except client.RequestFailed as err:
        code = EXIT_USAGE if err.code == "bad_request" else EXIT_FAILURE
        raise HookFailed(code, f"{err}" + (f" ({problem})" if problem else "")) from None
    except client.DaemonError as err:
        raise HookFailed(EXIT_FAILURE, str(err)) from None
    return _client_exit(result, uid)


def _client_exit(result: Any, uid: str) -> int:
    action = result.get("action") if isinstance(result, dict) else None
    if action == "rejected":
        pod = f"pod {result['name']} ({uid})" if result.get("name") else f"pod {uid}"
        why = ": ".join(str(result[k]) for k in ("reason", "message") if result.get(k)) or "no reason given"
        raise HookFailed(EXIT_REJECTED, f"{pod} rejected: {why}")
    return EXIT_OK


def quick_cgroup(pid: int | None, root: str = "/") -> str | None:
    """The container's cgroup string read straight from ``/proc/<pid>/cgroup``, or None when
    the answer needs :mod:`shim.cgroups.paths` (whose dataclasses cost the client-mode hook more
    than its round trip to the daemon).

    Only the plain case is answered: every cgroup mount in ``/proc/self/mountinfo`` shows its
    hierarchy from ``/`` (no cgroup namespace or subtree mount to strip), the cpuset and cpu
    controllers are each served by a mounted hierarchy named in the pid's file, and both are on
    the same path without ``..``. Then :func:`_resolve_cgroup` would return that same path (the
    daemon confines it under its mounts again before writing). Anything else returns None and
    the full resolver decides (``pid:<N>``, ``cgroupsPath``, errors).
    """
    if pid is None or pid <= 0:
        return None
    try:
        with open(os.path.join(root, "proc/self/mountinfo"), encoding="utf-8", errors="replace") as file:
            mountinfo = file.read()
        with open(os.path.join(root, f"proc/{pid}/cgroup"), encoding="utf-8", errors="replace") as file:
            proc = file.read()
    except OSError:
        return None
    v1_controllers: set[str] = set()
    unified = False
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 4 or fields[sep + 1] not in ("cgroup", "cgroup2"):
            continue
        if fields[3] != "/":
            return None
        if fields[sep + 1] == "cgroup2":
            unified = True
        else:
            v1_controllers.update(fields[sep + 3].split(","))
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in proc.splitlines():
        pieces = line.split(":", 2)
        if len(pieces) != 3:
            if line.strip():
                return None
            continue
        if pieces[0] == "0" and pieces[1] == "":
            v2 = pieces[2]
            continue
        for controller in pieces[1].split(","):
            v1[controller] = pieces[2]
    found = []
    for controller in ("cpuset", "cpu"):
        path = v1.get(controller) if controller in v1_controllers else (v2 if unified else None)
        if path is None:
            return None
        found.append(path)
    parts = [p for p in found[0].split("/") if p not in ("", ".")]
    if found[0] != found[1] or ".." in parts or "\x00" in found[0]:
        return None
    return "/" + "/".join(parts)


def _host_mounts() -> CgroupMounts:
    from shim.cgroups.paths import CgroupPathError, detect_mounts

    try:
        return detect_mounts("/")
    except CgroupPathError as err:
        raise HookFailed(EXIT_FAILURE, str(err)) from None


# ---------------------------------------------------------------------------------------------
# pod lookup


def _pod_files(pod_dir: str) -> Iterator[str]:
    try:
        names = sorted(os.listdir(pod_dir))
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(f"{pod_dir}: cannot list pod directory: {err.strerror}") from None
    for name in names:
        if name.endswith(POD_SUFFIXES) and not name.startswith("."):
            yield name


def find_pod(pod_dir: str | Path, uid: str, *, cache: HookCache | None = None) -> Pod | None:
    """The Pod with ``uid`` among the YAML/JSON files of ``pod_dir`` (first file in name order).

    A file that does not contain the uid's text is not parsed, so unmanaged containers cost a
    directory scan, not a YAML parse; a file that does and is malformed is a UsageError (the
    pod is podshim's, and must not start unpinned). With a ``cache``, a file unchanged since it
    was last parsed is not read at all: its pods come from the cache's index.
    """
    directory = os.fspath(pod_dir)
    names = set()
    for name in _pod_files(directory):
        names.add(name)
        path = os.path.join(directory, name)
        key = None
        if cache is not None:
            from shim.frontends.hookcache import file_key, pod_from_cache

            key = file_key(path)
            cached = cache.cached_pods(directory, name, key)
            if cached is not None:
                found = pod_from_cache(cached[uid]) if uid in cached else None
                if found is not None:
                    cache.hits.append(f"pod:{name}")
                    return found
                if uid not in cached:
                    continue
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else str(err)
            raise UsageError(f"{path}: cannot read: {reason}") from None
        if uid not in text:
            continue
        from shim.pod import PodError, load_pods

        try:
            pods = load_pods(text, source=path)
        except PodError as err:
            raise UsageError(str(err)) from None
        if cache is not None:
            cache.remember_pods(directory, name, key, pods)
        for pod in pods:
            if pod.uid == uid:
                return pod
    if cache is not None:
        cache.forget_missing(directory, names)
    return None


# ---------------------------------------------------------------------------------------------
# the node


def make_backend() -> FsCgroupBackend:
    """The cgroup backend for this host (tests substitute a fake tree)."""
    from shim.cgroups.backend import FsCgroupBackend

    return FsCgroupBackend()


def _open_node(
    args: HookArgs, backend: FsCgroupBackend, cache: HookCache
) -> tuple[Node, FileCheckpointStore]:
    from shim.actors.stores import FileCheckpointStore
    from shim.config import ConfigError
    from shim.frontends.cli import machine_from
    from shim.runtime.node import Node, NodeStartError

    try:
        config = cache.config(args.config)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    if args.topology is None:
        topology = cache.topology(args.sysfs_root, lambda: machine_from(None, args.sysfs_root)[0])
    else:
        topology, _ = machine_from(args.topology, args.sysfs_root)
    store = FileCheckpointStore(args.state_path)
    try:
        return Node.open(config, topology, store, cgroup_backend=backend, state_dir=args.state_path), store
    except NodeStartError as err:
        raise RuntimeFailure(str(err)) from None


def _load_registry(store: FileCheckpointStore) -> Registry:
    from shim.frontends.hook_registry import Registry, RegistryError

    try:
        return Registry.load(store, where=str(store.path("podshim_containers.json")))
    except RegistryError as err:
        raise RuntimeFailure(str(err)) from None


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(" ".join(f"podshim hook: warning: {line}".split()) + "\n")


def _resolve_cgroup(mounts: CgroupMounts, root: str | Path, state: oci.OCIState, bundle: oci.BundleConfig) -> str:
    """The cgroup string of the container (FsCgroupBackend's naming: the hierarchy path when its
    cpuset and cpu directories agree, else ``pid:<N>``); HookFailed(3) when it cannot be found."""
    from shim.cgroups.paths import CgroupPathError, cgroup_string, resolve_container

    try:
        location = resolve_container(
            mounts,
            pid=state.pid,
            cgroups_path=bundle.cgroups_path,
            root=root,
            # crun adds a "root" key to the state; its systemd layout differs (a sub-cgroup).
            runtime="crun" if state.root is not None else "runc",
            annotations=oci.merged_annotations(state, bundle),
            container_id=state.id,
        )
        return cgroup_string(location, state.pid)
    except (CgroupPathError, ValueError) as err:
        raise HookFailed(EXIT_FAILURE, f"container {state.id}: {err}") from None


def _locate(backend: FsCgroupBackend, state: oci.OCIState, bundle: oci.BundleConfig) -> str:
    return _resolve_cgroup(backend.mounts, backend.root, state, bundle)


def _load_cache(state_dir: str) -> HookCache:
    from shim.frontends.hookcache import HookCache

    return HookCache.load(state_dir)


def _create(args: HookArgs, state: oci.OCIState, bundle: oci.BundleConfig, uid: str, name: str) -> int:
    cache = _load_cache(args.state_path)
    pod = find_pod(args.pod_dir, uid, cache=cache)
    if pod is None or not any(c.name == name for c in pod.all_containers()):
        return EXIT_OK
    from shim.actors.stores import state_lock

    with state_lock(args.state_path):
        try:
            return _create_locked(args, state, bundle, pod, name, cache)
        finally:
            cache.save()


def _create_locked(
    args: HookArgs, state: oci.OCIState, bundle: oci.BundleConfig, pod: Pod, name: str, cache: HookCache
) -> int:
    from shim.frontends.hook_registry import ContainerRecord, refresh
    from shim.messages import Admitted, ApplyFailed

    uid = pod.uid
    backend = make_backend()
    node, store = _open_node(args, backend, cache)
    registry = _load_registry(store)
    shared_before = node.cpu_state.default_cpuset
    outcome = node.admit(pod)
    if not isinstance(outcome, Admitted):
        raise HookFailed(
            EXIT_REJECTED, f"pod {pod.name} ({uid}) rejected: {outcome.reason}: {outcome.message}"
        )
    assignment = next(c for c in outcome.containers if c.name == name)
    try:
        cgroup = _locate(backend, state, bundle)
        result = node.container_created(uid, name, cgroup, state.pid)
        if isinstance(result, ApplyFailed):
            raise HookFailed(
                EXIT_FAILURE, f"cannot pin container {name} of pod {pod.name} ({uid}) at {result.path}: "
                f"{result.message}",
            )
    except HookFailed:
        # The container will not run: give back what its admission took, unless it was
        # already running under this name (a re-run of the hook).
        if registry.get(uid, name) is None:
            node.remove_container(uid, name)
        raise
    registry.record(pod, name, ContainerRecord(cgroup=cgroup, pid=state.pid, cpus=assignment.cpus,
                                               mems=assignment.mems))
    if node.cpu_state.default_cpuset != shared_before:
        _warn(refresh(node, registry, skip=(uid, name)))
    registry.save(store)
    return EXIT_OK


def _mentions(store_dir: str, uid: str) -> bool:
    # Whether the kubelet-format state files hold anything for the pod, without opening a node
    # (which would write fresh state files for a container podshim never managed).
    from shim.runtime.node import CPU_STATE, MEMORY_STATE

    for name in (CPU_STATE, MEMORY_STATE):
        try:
            with open(os.path.join(store_dir, name), encoding="utf-8") as file:
                if uid in file.read():
                    return True
        except (OSError, UnicodeDecodeError):
            continue
    return False


def _stop(args: HookArgs, uid: str, name: str) -> int:
    if not os.path.isdir(args.state_path):
        return EXIT_OK
    from shim.actors.stores import FileCheckpointStore, state_lock

    with state_lock(args.state_path):
        registry = _load_registry(FileCheckpointStore(args.state_path))
        if registry.get(uid, name) is None and not _mentions(args.state_path, uid):
            return EXIT_OK
        cache = _load_cache(args.state_path)
        try:
            _stop_locked(args, uid, name, registry, cache)
        finally:
            cache.save()
    return EXIT_OK


def _stop_locked(args: HookArgs, uid: str, name: str, registry: Registry, cache: HookCache) -> None:
    from shim.frontends.hook_registry import refresh

    node, store = _open_node(args, make_backend(), cache)
    shared_before = node.cpu_state.default_cpuset
    node.remove_container(uid, name)
    registry.forget(uid, name)
    if node.cpu_state.default_cpuset != shared_before:
        _warn(refresh(node, registry))
    registry.save(store)


__all__ = [
    "DEFAULT_POD_DIR",
    "DEFAULT_STATE_DIR",
    "STAGES",
    "HookArgs",
    "HookFailed",
    "configure",
    "find_pod",
    "main",
    "parse_argv",
    "quick_cgroup",
    "run",
    "run_client",
    "run_namespace",
    "stage_kind",
]
