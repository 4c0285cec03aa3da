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

Only the standard library and shim.frontends.oci are imported until the container is known to
be managed; the node, msgspec and YAML come in after that.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from shim.frontends import oci
from shim.frontends.cli import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, RuntimeFailure, UsageError, add_topology_source

if TYPE_CHECKING:
    from shim.actors.stores import FileCheckpointStore
    from shim.cgroups.backend import FsCgroupBackend
    from shim.frontends.hook_registry import Registry
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


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        metavar="STAGE",
        help="createRuntime (alias prestart) or poststop; the OCI state is read from stdin",
    )
    parser.add_argument("--config", metavar="FILE", help="KubeletConfiguration YAML (default: podshim's defaults)")
    parser.add_argument(
        "--state-dir", metavar="DIR", default=DEFAULT_STATE_DIR, help=f"state files (default {DEFAULT_STATE_DIR})"
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


def run(args: argparse.Namespace) -> int:
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
        if kind == CREATE:
            return _create(args, state, bundle, identity.pod_uid, identity.container)
        return _stop(args, identity.pod_uid, identity.container)
    except HookFailed as failed:
        sys.stderr.write(" ".join(f"podshim hook: {failed}".split()) + "\n")
        return failed.code


# ---------------------------------------------------------------------------------------------
# pod lookup


def _pod_files(pod_dir: Path) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(pod_dir))
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(f"{pod_dir}: cannot list pod directory: {err.strerror}") from None
    for name in names:
        if name.endswith(POD_SUFFIXES) and not name.startswith("."):
            yield pod_dir / name


def find_pod(pod_dir: str | Path, uid: str) -> Pod | None:
    """The Pod with ``uid`` among the YAML/JSON files of ``pod_dir`` (first file in name order).

    A file that does not contain the uid's text is not parsed, so unmanaged containers cost a
    directory scan, not a YAML parse; a file that does and is malformed is a UsageError (the
    pod is podshim's, and must not start unpinned).
    """
    for path in _pod_files(Path(pod_dir)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else str(err)
            raise UsageError(f"{path}: cannot read: {reason}") from None
        if uid not in text:
            continue
        from shim.pod import PodError, load_pods

        try:
            pods = load_pods(text, source=str(path))
        except PodError as err:
            raise UsageError(str(err)) from None
        for pod in pods:
            if pod.uid == uid:
                return pod
    return None


# ---------------------------------------------------------------------------------------------
# the node


def make_backend() -> FsCgroupBackend:
    """The cgroup backend for this host (tests substitute a fake tree)."""
    from shim.cgroups.backend import FsCgroupBackend

    return FsCgroupBackend()


def _open_node(args: argparse.Namespace, backend: FsCgroupBackend) -> tuple[Node, FileCheckpointStore]:
    from shim.actors.stores import FileCheckpointStore
    from shim.config import ConfigError, load_config
    from shim.frontends.cli import load_machine
    from shim.runtime.node import Node, NodeStartError

    try:
        config = load_config(args.config)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    topology, _ = load_machine(args)
    store = FileCheckpointStore(args.state_dir)
    try:
        return Node.open(config, topology, store, cgroup_backend=backend, state_dir=args.state_dir), store
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


def _locate(
    backend: FsCgroupBackend, state: oci.OCIState, bundle: oci.BundleConfig, annotations: dict[str, str]
) -> str:
    from shim.cgroups.backend import cgroup_string
    from shim.cgroups.paths import CgroupPathError, resolve_container

    try:
        location = resolve_container(
            backend.mounts,
            pid=state.pid,
            cgroups_path=bundle.cgroups_path,
            root=backend.root,
            # crun adds a "root" key to the state; its systemd layout differs (a sub-cgroup).
            runtime="crun" if state.root is not None else "runc",
            annotations=annotations,
            container_id=state.id,
        )
        return cgroup_string(location, state.pid)
    except (CgroupPathError, ValueError) as err:
        raise HookFailed(EXIT_FAILURE, f"container {state.id}: {err}") from None


def _create(args: argparse.Namespace, state: oci.OCIState, bundle: oci.BundleConfig, uid: str, name: str) -> int:
    pod = find_pod(args.pod_dir, uid)
    if pod is None or not any(c.name == name for c in pod.all_containers()):
        return EXIT_OK
    from shim.actors.stores import state_lock
    from shim.frontends.hook_registry import ContainerRecord, refresh
    from shim.messages import Admitted, ApplyFailed

    backend = make_backend()
    with state_lock(args.state_dir):
        node, store = _open_node(args, backend)
        registry = _load_registry(store)
        shared_before = node.cpu_state.default_cpuset
        outcome = node.admit(pod)
        if not isinstance(outcome, Admitted):
            raise HookFailed(
                EXIT_REJECTED, f"pod {pod.name} ({uid}) rejected: {outcome.reason}: {outcome.message}"
            )
        assignment = next(c for c in outcome.containers if c.name == name)
        try:
            cgroup = _locate(backend, state, bundle, oci.merged_annotations(state, bundle))
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
            if uid in Path(store_dir, name).read_text(encoding="utf-8"):
                return True
        except OSError:
            continue
    return False


def _stop(args: argparse.Namespace, uid: str, name: str) -> int:
    if not Path(args.state_dir).is_dir():
        return EXIT_OK
    from shim.actors.stores import FileCheckpointStore, state_lock
    from shim.frontends.hook_registry import refresh

    with state_lock(args.state_dir):
        registry = _load_registry(FileCheckpointStore(args.state_dir))
        if registry.get(uid, name) is None and not _mentions(args.state_dir, uid):
            return EXIT_OK
        node, store = _open_node(args, make_backend())
        shared_before = node.cpu_state.default_cpuset
        node.remove_container(uid, name)
        registry.forget(uid, name)
        if node.cpu_state.default_cpuset != shared_before:
            _warn(refresh(node, registry))
        registry.save(store)
    return EXIT_OK


__all__ = ["DEFAULT_POD_DIR", "DEFAULT_STATE_DIR", "STAGES", "configure", "find_pod", "run", "stage_kind"]
