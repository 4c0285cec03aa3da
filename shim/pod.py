"""Pods and containers from Kubernetes Pod manifests, with QoS and exclusivity checks.

Quantities are converted once, at load time, to exact integers: ``cpu`` in millicores, every
other resource (memory, ``hugepages-<size>``, devices) in its base unit rounded up, the way the
kubelet's ``Quantity.MilliValue()`` / ``Value()`` do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from shim.quantity import INT64_MAX, QuantityError, milli_value, value

ContainerKind = Literal["init", "sidecar", "app"]
QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]

CPU = "cpu"
MEMORY = "memory"
HUGEPAGES_PREFIX = "hugepages-"
# The only resources Kubernetes uses for the QoS class.
_QOS_RESOURCES = (CPU, MEMORY)
# Namespace for uids podshim derives for pods that have none (stable across runs). A string:
# the uuid module is imported only when a uid is derived (it loads ``platform``, which the OCI
# hook's start-up cannot afford).
_UID_NAMESPACE = "6f0d3c1e-5a3b-4c1e-9a53-706f64736869"


class PodError(ValueError):
    """A pod manifest podshim cannot use; ``str`` names the field path and the value."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(f"{field}: {problem} (got {value!r})" if value is not None else f"{field}: {problem}")
        self.field = field
        self.value = value
        self.problem = problem


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """Requests and limits: resource name → integer amount (cpu in millicores)."""

    requests: dict[str, int] = msgspec.field(default_factory=dict)
    limits: dict[str, int] = msgspec.field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.requests and not self.limits


class Container(msgspec.Struct, frozen=True, kw_only=True):
    """One container of a pod. ``kind`` is ``init``, ``sidecar`` (an init container with
    ``restartPolicy: Always``) or ``app``."""

    name: str
    kind: ContainerKind
    resources: Resources = msgspec.field(default_factory=Resources)

    @property
    def is_init(self) -> bool:
        """Declared under initContainers (regular init container or sidecar)."""
        return self.kind != "app"

    @property
    def is_sidecar(self) -> bool:
        return self.kind == "sidecar"

    def request(self, resource: str) -> int:
        return self.resources.requests.get(resource, 0)

    def limit(self, resource: str) -> int:
        return self.resources.limits.get(resource, 0)

    def is_guaranteed_equivalent(self) -> bool:
        """Non-zero cpu and memory requests equal to their limits (KEP-5526)."""
        return all(
            self.request(name) > 0 and self.request(name) == self.limit(name) for name in _QOS_RESOURCES
        )

    def integral_cpus(self) -> int:
        """The cpu request as whole CPUs; 0 when missing or fractional."""
        millis = self.request(CPU)
        return millis // 1000 if millis % 1000 == 0 else 0


class Pod(msgspec.Struct, frozen=True, kw_only=True):
    """A pod: identity, pod-level resources (``spec.resources``) and its containers.

    ``uid_derived`` is true when the manifest had no uid and podshim derived one from
    namespace/name (uuid5), so the same manifest always gets the same uid.
    """

    uid: str
    name: str
    namespace: str = "default"
    resources: Resources | None = None
    init_containers: tuple[Container, ...] = ()
    containers: tuple[Container, ...] = ()
    uid_derived: bool = False

    @classmethod
    def from_dict(cls, manifest: Mapping[str, Any], *, apply_defaults: bool = True, source: str = "") -> Pod:
        """Build a Pod from its Kubernetes mapping; ``apply_defaults`` copies limits into missing
        requests as the API server does. Errors are PodError naming the field path."""
        return _PodReader(source, apply_defaults).read(manifest)

    # containers ---------------------------------------------------------------------------
    def all_containers(self) -> Iterator[Container]:
        """Init containers (and sidecars) in order, then app containers."""
        yield from self.init_containers
        yield from self.containers

    def container(self, name: str) -> Container:
        for container in self.all_containers():
            if container.name == name:
                return container
        raise KeyError(name)

    # pod-level resources ------------------------------------------------------------------
    def has_pod_level_resources(self) -> bool:
        """``spec.resources`` sets a cpu or memory request or limit (KEP-2837)."""
        if self.resources is None:
            return False
        return any(
            name in self.resources.requests or name in self.resources.limits for name in _QOS_RESOURCES
        )

    def qos_class(self, *, pod_level_resources: bool = True) -> QOSClass:
        """The kubelet's QoS class; with the PodLevelResources gate on and ``spec.resources``
        set, it is computed from the pod-level resources alone."""
        if pod_level_resources and self.has_pod_level_resources():
            assert self.resources is not None
            return _qos_of([self.resources])
        return _qos_of([container.resources for container in self.all_containers()])


def _qos_of(resource_lists: list[Resources]) -> QOSClass:
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for resources in resource_lists:
        for name in _QOS_RESOURCES:
            if resources.requests.get(name, 0) > 0:
                requests[name] = requests.get(name, 0) + resources.requests[name]
        limits_found = set()
        for name in _QOS_RESOURCES:
            if resources.limits.get(name, 0) > 0:
                limits_found.add(name)
                limits[name] = limits.get(name, 0) + resources.limits[name]
        if limits_found != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    equal = all(limits.get(name) == amount for name, amount in requests.items())
    if guaranteed and equal and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def derive_uid(namespace: str, name: str) -> str:
    """The uid podshim gives a pod manifest without one: uuid5 of ``namespace/name``."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(_UID_NAMESPACE), f"{namespace}/{name}"))


class _PodReader:
    """Validates a Pod mapping field by field, so that errors can name the exact path."""

    def __init__(self, source: str, apply_defaults: bool) -> None:
        self.prefix = f"{source}: " if source else ""
        self.apply_defaults = apply_defaults

    def fail(self, field: str, value: object, problem: str) -> PodError:
        return PodError(self.prefix + field, value, problem)

    def mapping(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        found = parent.get(key)
        if found is None:
            return {}
        if not isinstance(found, Mapping):
            raise self.fail(path, found, "must be a mapping")
        return found

    def read(self, manifest: Mapping[str, Any]) -> Pod:
        if not isinstance(manifest, Mapping):
            raise self.fail("(document)", manifest, "a Pod must be a mapping")
        kind = manifest.get("kind", "Pod")
        if kind != "Pod":
            raise self.fail("kind", kind, 'must be "Pod"')
        metadata = self.mapping(manifest, "metadata", "metadata")
        spec = self.mapping(manifest, "spec", "spec")
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail("metadata.name", name, "required non-empty string")
        namespace = metadata.get("namespace") or "default"
        if not isinstance(namespace, str):
            raise self.fail("metadata.namespace", namespace, "must be a string")
        uid = metadata.get("uid")
        if uid is not None and (not isinstance(uid, str) or not uid):
            raise self.fail("metadata.uid", uid, "must be a non-empty string")
        init = self.containers(spec, "initContainers", sidecar_allowed=True)
        apps = self.containers(spec, "containers", sidecar_allowed=False)
        if not apps:
            raise self.fail("spec.containers", spec.get("containers"), "a pod needs at least one container")
        seen: set[str] = set()
        for path, container in [(f"spec.initContainers[{i}]", c) for i, c in enumerate(init)] + [
            (f"spec.containers[{i}]", c) for i, c in enumerate(apps)
        ]:
            if container.name in seen:
                raise self.fail(f"{path}.name", container.name, "duplicate container name")
            seen.add(container.name)
        pod_resources = None
        if spec.get("resources") is not None:
            pod_resources = self.resources(self.mapping(spec, "resources", "spec.resources"), "spec.resources")
        return Pod(
            uid=uid or derive_uid(namespace, name),
            name=name,
            namespace=namespace,
            resources=pod_resources,
            init_containers=tuple(init),
            containers=tuple(apps),
            uid_derived=uid is None,
        )

    def containers(self, spec: Mapping[str, Any], key: str, *, sidecar_allowed: bool) -> list[Container]:
        items = spec.get(key) or []
        if not isinstance(items, list):
            raise self.fail(f"spec.{key}", items, "must be a list")
        out = []
        for index, item in enumerate(items):
            path = f"spec.{key}[{index}]"
            if not isinstance(item, Mapping):
                raise self.fail(path, item, "must be a mapping")
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise self.fail(f"{path}.name", name, "required non-empty string")
            policy = item.get("restartPolicy")
            if sidecar_allowed:
                if policy not in (None, "Always"):
                    raise self.fail(f"{path}.restartPolicy", policy, 'an init container may only set "Always"')
                kind: ContainerKind = "sidecar" if policy == "Always" else "init"
            else:
                if policy not in (None, "Always", "OnFailure", "Never"):
                    raise self.fail(f"{path}.restartPolicy", policy, "unknown restartPolicy")
                kind = "app"
            resources = self.resources(self.mapping(item, "resources", f"{path}.resources"), f"{path}.resources")
            out.append(Container(name=name, kind=kind, resources=resources))
        return out

    def resources(self, raw: Mapping[str, Any], path: str) -> Resources:
        requests = self.resource_list(self.mapping(raw, "requests", f"{path}.requests"), f"{path}.requests")
        limits = self.resource_list(self.mapping(raw, "limits", f"{path}.limits"), f"{path}.limits")
        if self.apply_defaults:
            requests = {**limits, **requests}
        for resource, amount in requests.items():
            if resource in limits and amount > limits[resource]:
                raise self.fail(
                    f"{path}.requests.{resource}", raw["requests"][resource],
                    f"must be less than or equal to the {resource} limit {raw['limits'][resource]!r}",
                )
        return Resources(requests=requests, limits=limits)

    def resource_list(self, raw: Mapping[str, Any], path: str) -> dict[str, int]:
        out = {}
        for resource, text in raw.items():
            field = f"{path}.{resource}"
            try:
                amount = milli_value(text) if resource == CPU else value(text)
            except QuantityError as err:
                raise self.fail(field, text, str(err).split(":")[0]) from None
            if amount < 0:
                raise self.fail(field, text, "must be greater than or equal to 0")
            if amount > INT64_MAX:
                raise self.fail(field, text, "failed to represent quantity as int64")
            out[str(resource)] = amount
        return out


def load_pods(text: str, *, source: str = "") -> list[Pod]:
    """Pods from a file's text: one Pod, a ``List`` of them, or several YAML documents."""
    documents: list[Any]
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        import json  # here: the hook reads cached pods and never loads json's regular expressions

        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError as err:
            raise PodError(source or "(input)", None, f"invalid JSON: {err}") from None
    else:
        documents = _yaml_documents(text, source)
    pods: list[Pod] = []
    for document in documents:
        if document is None:
            continue
        if isinstance(document, list):
            items = document
        elif isinstance(document, Mapping) and document.get("kind") in ("List", "PodList"):
            items = document.get("items") or []
        else:
            items = [document]
        for index, item in enumerate(items):
            pods.append(Pod.from_dict(item, source=source if len(items) == 1 else f"{source}[{index}]"))
    return pods


def _yaml_documents(text: str, source: str) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PodError(source or "(input)", None, f"invalid YAML{where}: {problem}") from None
