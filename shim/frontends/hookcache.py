"""What the embedded-mode hook would otherwise recompute on every container start, kept in
``<state-dir>/podshim_cache.json``: the parsed KubeletConfiguration, the machine topology
discovered from sysfs, and an index of the pods in ``--pod-dir``.

A hook is a new process per container, and without this each call parses the config YAML
(PyYAML alone costs tens of milliseconds to import), walks sysfs, and parses pod YAML. Every
entry carries the key it was computed from and is used only while that key still matches:

* config: the file's path and ``stat`` (mtime_ns, ctime_ns, size, inode); the raw document is
  cached and validated again on use (validation is cheap; parsing is what costs).
* topology (``--sysfs-root`` or ``/``): the resolved root, the kernel's boot id, the content of
  ``cpu/online``, ``node/online``, every ``nr_hugepages`` and ``proc/self/cgroup`` under the
  root (discovery reads the allowed cpus/mems from the caller's cgroup). A CPU or memory hotplug,
  a hugepage pool resize, a reboot or a different caller cgroup rediscovers. A ``--topology``
  file is not cached (it is JSON already).
* pods: per file name, its ``stat`` key and the pods it held (as plain data). A file is read
  only when its key changed, and parsed only when it mentions the uid looked up (as
  :func:`shim.frontends.hook.find_pod` does without a cache).

The cache is not state: a missing, corrupt or foreign-version file is ignored and rewritten,
so it is written atomically (rename) but not fsynced, and never creates the state directory.
"""

from __future__ import annotations

import os

from shim.frontends import plainjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from shim.config import Config
    from shim.pod import Pod
    from shim.topology.model import Topology

CACHE_NAME = "podshim_cache.json"
VERSION = 1
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def file_key(path: str) -> list[int] | None:
    """The identity of a file's current content as far as ``stat`` tells (None: no file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def sysfs_key(root: str, *, boot_id_path: str | None = None) -> list[Any]:
    """What a sysfs discovery under ``root`` depends on that can change while a node runs."""
    base = os.path.realpath(root)
    parts: list[Any] = [base, _read(boot_id_path or BOOT_ID)]
    for name in ("sys/devices/system/cpu/online", "sys/devices/system/node/online", "proc/self/cgroup"):
        parts.append(_read(os.path.join(base, name)))
    parts.append(_hugepages(base))
    return parts


def _hugepages(base: str) -> list[list[str | None]]:
    found: list[list[str | None]] = []
    pools = ["sys/kernel/mm/hugepages"]
    try:
        nodes = sorted(n for n in os.listdir(os.path.join(base, "sys/devices/system/node")) if n.startswith("node"))
    except OSError:
        nodes = []
    pools.extend(f"sys/devices/system/node/{node}/hugepages" for node in nodes)
    for pool in pools:
        try:
            sizes = sorted(os.listdir(os.path.join(base, pool)))
        except OSError:
            continue
        for size in sizes:
            found.append([f"{pool}/{size}", _read(os.path.join(base, pool, size, "nr_hugepages"))])
    return found


class HookCache:
    """The cache file of one state directory, loaded once per hook call; :meth:`save` writes it
    back when an entry changed."""

    def __init__(self, state_dir: str | os.PathLike[str], document: dict[str, Any] | None = None) -> None:
        self.state_dir = os.fspath(state_dir)
        self.path = os.path.join(self.state_dir, CACHE_NAME)
        self.doc: dict[str, Any] = document if document is not None else {"version": VERSION}
        self.changed = False
        self.hits: list[str] = []  # which entries were served from the cache (tests, --debug)

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> HookCache:
        path = os.path.join(os.fspath(state_dir), CACHE_NAME)
        text = _read(path)
        document = None
        if text is not None:
            try:
                found = plainjson.loads(text)
            except ValueError:
                found = None
            if isinstance(found, dict) and found.get("version") == VERSION:
                document = found
        return cls(state_dir, document)

    def _section(self, name: str) -> dict[str, Any]:
        section = self.doc.get(name)
        if not isinstance(section, dict):
            section = self.doc[name] = {}
        return section

    def save(self) -> None:
        """Write the file if something changed and the state directory exists."""
        if not self.changed or not os.path.isdir(self.state_dir):
            return
        temp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as file:
                file.write(plainjson.dumps(self.doc))
            os.replace(temp, self.path)
        except OSError:
            # A cache that cannot be written only costs the next call some time.
            import contextlib

            with contextlib.suppress(OSError):
                os.unlink(temp)
            return
        self.changed = False

    # --- config -----------------------------------------------------------------------------
    def config(self, path: str | None) -> Config:
        """``shim.config.load_config(path)``, from the cached document while the file is unchanged."""
        from shim.config import config_from_mapping, default_config, read_config_document

        if path is None:
            return default_config()
        key = [os.path.abspath(path), file_key(path)]
        entry = self.doc.get("config")
        if isinstance(entry, dict) and entry.get("key") == key and key[1] is not None:
            self.hits.append("config")
            return config_from_mapping(entry.get("document"), source=str(path))
        document = read_config_document(path)
        config = config_from_mapping(document, source=str(path))  # ConfigError: nothing cached
        if key[1] is not None and _json_safe(document):
            self.doc["config"] = {"key": key, "document": document}
            self.changed = True
        return config

    # --- topology ---------------------------------------------------------------------------
    def topology(self, sysfs_root: str | None, discover: Callable[[], Topology]) -> Topology:
        """The topology ``discover()`` finds under ``sysfs_root`` (None: ``/``), from the cache
        while :func:`sysfs_key` is unchanged."""
        from shim.topology import TopologyError
        from shim.topology.jsonfile import loads_topology, to_data

        key = sysfs_key(sysfs_root or "/")
        entry = self.doc.get("topology")
        if isinstance(entry, dict) and entry.get("key") == key:
            try:
                topology = loads_topology(plainjson.dumps(entry.get("data")), source=self.path)
            except TopologyError:
                pass
            else:
                self.hits.append("topology")
                return topology
        topology = discover()
        self.doc["topology"] = {"key": key, "data": to_data(topology)}
        self.changed = True
        return topology

    # --- pods -------------------------------------------------------------------------------
    def cached_pods(self, pod_dir: str, name: str, key: list[int] | None) -> dict[str, Any] | None:
        """The pods (uid -> plain data) last parsed from ``pod_dir/name`` if its key still matches."""
        entry = self._section("pods").get(os.path.abspath(pod_dir), {}).get(name)
        if key is not None and isinstance(entry, dict) and entry.get("key") == key:
            pods = entry.get("pods")
            return pods if isinstance(pods, dict) else None
        return None

    def remember_pods(self, pod_dir: str, name: str, key: list[int] | None, pods: list[Pod]) -> None:
        """Record what ``pod_dir/name`` (whose key was ``key`` before it was read) holds."""
        if key is None:
            return
        import msgspec

        directory = self._section("pods").setdefault(os.path.abspath(pod_dir), {})
        held: dict[str, Any] = {}
        for pod in pods:
            held.setdefault(pod.uid, msgspec.to_builtins(pod))  # the first pod of a uid wins
        directory[name] = {"key": key, "pods": held}
        self.changed = True

    def forget_missing(self, pod_dir: str, names: set[str]) -> None:
        """Drop index entries of files no longer in the directory."""
        directory = self._section("pods").get(os.path.abspath(pod_dir))
        if not directory:
            return
        for name in [n for n in directory if n not in names]:
            del directory[name]
            self.changed = True


def pod_from_cache(data: Any) -> Pod | None:
    """A Pod back from :meth:`HookCache.remember_pods`' plain data (None if it no longer fits)."""
    import msgspec

    from shim.pod import Pod

    try:
        return msgspec.convert(data, Pod)
    except msgspec.ValidationError:
        return None


def _json_safe(document: object) -> bool:
    # Cache the raw document only if JSON carries it unchanged (YAML can hold dates, int keys).
    try:
        return bool(plainjson.loads(plainjson.dumps(document)) == document)
    except (TypeError, ValueError):
        return False


__all__ = ["BOOT_ID", "CACHE_NAME", "HookCache", "file_key", "pod_from_cache", "sysfs_key"]
