"""The hint store: the merged hint per (pod, container), read by providers at allocation time,
and the container-id bookkeeping that decides when a hint can be dropped (spec §6, §6.4)."""

from __future__ import annotations

from shim.topology_manager.hint import TopologyHint

_NO_HINT = TopologyHint(None, False)


class HintStore:
    """``pod_uid → container name → hint`` plus ``container_id ↔ (pod_uid, container name)``."""

    def __init__(self) -> None:
        self.hints: dict[str, dict[str, TopologyHint]] = {}
        self.container_ids: dict[str, tuple[str, str]] = {}

    def get_affinity(self, pod_uid: str, container_name: str) -> TopologyHint:
        """The stored hint, or ``{None, False}`` for an unknown pod or container."""
        return self.hints.get(pod_uid, {}).get(container_name, _NO_HINT)

    def set_hint(self, pod_uid: str, container_name: str, hint: TopologyHint) -> None:
        self.hints.setdefault(pod_uid, {})[container_name] = hint

    def add_container(self, pod_uid: str, container_name: str, container_id: str) -> None:
        self.container_ids[container_id] = (pod_uid, container_name)

    def remove_container(self, container_id: str) -> None:
        """Forget ``container_id``; drop the hint once no other id (a restart) maps to it."""
        key = self.container_ids.pop(container_id, None)
        if key is None:
            return
        if key in self.container_ids.values():
            return
        pod_uid, container_name = key
        pod_hints = self.hints.get(pod_uid)
        if pod_hints is None:
            return
        pod_hints.pop(container_name, None)
        if not pod_hints:
            del self.hints[pod_uid]
