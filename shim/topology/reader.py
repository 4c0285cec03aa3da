"""Reading a tree laid out like ``/`` without the operating system following links.

A ``SysfsReader`` has four symlink-blind primitives (kind, readlink, listdir, read) that a real
directory (:class:`DirectoryReader`) or an in-memory snapshot (:class:`MemoryReader`) implement,
so discovery can be given either. :class:`Tree` resolves links lexically and inside the root:
sysfs has link cycles (``nodeN/cpuM`` ↔ ``cpuM/nodeN``) and a tree under test must not reach out
of its root. Also the kernel's cpulist and cpumask text formats.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, Protocol

from shim.cpuset import CPUSet
from shim.topology import TopologyError

Kind = Literal["file", "dir", "link"]

CPU_DIR = "sys/devices/system/cpu"
NODE_DIR = "sys/devices/system/node"
_MAX_LINK_HOPS = 40
PCI_ADDRESS = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


# ---------------------------------------------------------------------------------------------
# readers


class SysfsReader(Protocol):
    """Symlink-blind access to a tree laid out like ``/``.

    Paths are relative ("sys/devices/system/cpu/online", "" for the root), '/'-separated, and
    the discovery code only passes paths whose directory part holds no symlink: a reader never
    has to follow one.
    """

    def kind(self, path: str) -> Kind | None:
        """"file", "dir" or "link" (the entry itself, never its target); None when absent."""
        ...

    def readlink(self, path: str) -> str:
        """The target text of the link at ``path``."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Entry names of the directory at ``path``."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """Content of the regular file at ``path``; OSError when it cannot be read."""
        ...

    def describe(self, path: str) -> str:
        """``path`` as a human should see it in an error message."""
        ...


class DirectoryReader:
    """A real directory tree (``/`` for this machine). Uses lstat and O_NOFOLLOW only."""

    def __init__(self, root: str | Path) -> None:
        self.root = os.fspath(root)

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def kind(self, path: str) -> Kind | None:
        try:
            mode = os.lstat(self._full(path)).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        if stat.S_ISDIR(mode):
            return "dir"
        return "file"

    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self._full(path))

    def read_bytes(self, path: str) -> bytes:
        fd = os.open(self._full(path), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            chunks: list[bytes] = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def describe(self, path: str) -> str:
        return self._full(path)


class MemoryReader:
    """An in-memory tree: ``files`` (path → content) and ``links`` (path → target text).

    Directories are implied by the paths. ``unreadable`` paths raise PermissionError on read.
    """

    def __init__(
        self,
        files: Mapping[str, str | bytes],
        links: Mapping[str, str] | None = None,
        *,
        unreadable: Iterable[str] = (),
        name: str = "memory:",
    ) -> None:
        self.files = {_norm(k): v.encode() if isinstance(v, str) else v for k, v in files.items()}
        self.links = {_norm(k): v for k, v in (links or {}).items()}
        self.unreadable = {_norm(p) for p in unreadable}
        self.name = name
        self._children: dict[str, set[str]] = {"": set()}
        for entry in (*self.files, *self.links):
            parts = entry.split("/")
            for depth in range(len(parts)):
                self._children.setdefault("/".join(parts[:depth]), set()).add(parts[depth])

    @classmethod
    def snapshot(cls, root: str | Path) -> MemoryReader:
        """Copy a real tree (links recorded, never followed)."""
        files: dict[str, str | bytes] = {}
        links: dict[str, str] = {}
        base = os.fspath(root)
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            rel = os.path.relpath(dirpath, base)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in (*filenames, *dirnames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    links[prefix + name] = os.readlink(full)
                elif name in filenames:
                    with open(full, "rb") as handle:
                        files[prefix + name] = handle.read()
        return cls(files, links, name=f"{base}:")

    def kind(self, path: str) -> Kind | None:
        if path in self.links:
            return "link"
        if path in self.files:
            return "file"
        if path in self._children:
            return "dir"
        return None

    def readlink(self, path: str) -> str:
        return self.links[path]

    def listdir(self, path: str) -> list[str]:
        return sorted(self._children.get(path, ()))

    def read_bytes(self, path: str) -> bytes:
        if path in self.unreadable:
            raise PermissionError(13, "Permission denied", path)
        return self.files[path]

    def describe(self, path: str) -> str:
        return f"{self.name}/{path}"


def _norm(path: str) -> str:
    return "/".join(part for part in path.split("/") if part not in ("", "."))


# ---------------------------------------------------------------------------------------------
# the tree: link resolution inside the root, tolerant text reading


class Tree:
    """Reads a ``SysfsReader`` the way discovery needs: links resolved lexically in the tree,
    NUL bytes and surrounding whitespace stripped, missing files as None."""

    def __init__(self, reader: SysfsReader) -> None:
        self.reader = reader
        self._kinds: dict[str, Kind | None] = {"": "dir"}

    def describe(self, path: str) -> str:
        return self.reader.describe(path)

    def _kind(self, path: str) -> Kind | None:
        if path not in self._kinds:
            self._kinds[path] = self.reader.kind(path)
        return self._kinds[path]

    def resolve(self, path: str, *, strict: bool = True) -> str | None:
        """``path`` with every symlink replaced by its target, without leaving the tree (an
        absolute target starts again at the root, ``..`` stops at it). None when a component
        is missing (``strict``) or links loop; non-strict keeps the rest lexically."""
        done: list[str] = []
        pending = deque(path.split("/"))
        hops = 0
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            kind = self._kind(candidate)
            if kind == "link":
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                target = self.reader.readlink(candidate)
                if target.startswith("/"):
                    done = []
                pending.extendleft(reversed(target.split("/")))
                continue
            if kind is None or (kind == "file" and pending):
                if strict:
                    return None
                done.extend(p for p in [part, *pending] if p not in ("", "."))
                return "/".join(done)
            done.append(part)
        return "/".join(done)

    def follow(self, path: str, *, strict: bool = True) -> str | None:
        """Resolve the entry ``path``, also when a copy of the tree stored the link as a small
        file holding its target (tools without symlink support do that)."""
        parent, _, name = path.rpartition("/")
        real_parent = self.resolve(parent)
        if real_parent is None:
            return None
        entry = f"{real_parent}/{name}" if real_parent else name
        kind = self._kind(entry)
        if kind == "file":
            target = self.text(entry)
            if target is None or not target.startswith(("../", "/")) or "\n" in target:
                return None
            return self.resolve(f"{real_parent}/{target}", strict=strict)
        return self.resolve(entry, strict=strict)

    def listdir(self, path: str) -> list[str] | None:
        real = self.resolve(path)
        if real is None or self._kind(real) != "dir":
            return None
        try:
            return self.reader.listdir(real)
        except OSError:
            return None

    def is_dir(self, path: str) -> bool:
        real = self.resolve(path)
        return real is not None and self._kind(real) == "dir"

    def is_file(self, path: str) -> bool:
        real = self.resolve(path)
        return real is not None and self._kind(real) == "file"

    def text(self, path: str, *, required: bool = False) -> str | None:
        real = self.resolve(path)
        if real is None or self._kind(real) != "file":
            if required:
                raise TopologyError(f"{self.describe(path)}: missing")
            return None
        try:
            data = self.reader.read_bytes(real)
        except OSError as error:
            if required:
                raise TopologyError(f"{self.describe(path)}: cannot read: {error.strerror or error}") from error
            return None
        return data.replace(b"\x00", b"").decode("utf-8", "replace").strip()

    def cpus(
        self, base: str, lists: Iterable[str], masks: Iterable[str] = (), *, required: bool = False
    ) -> CPUSet | None:
        """The first present ``*_list`` file under ``base``, else the first hex mask file."""
        for name in lists:
            text = self.text(f"{base}/{name}")
            if text is not None:
                return parse_cpulist(text, self.describe(f"{base}/{name}"))
        for name in masks:
            text = self.text(f"{base}/{name}")
            if text is not None:
                return parse_cpumask(text, self.describe(f"{base}/{name}"))
        if required:
            first = next(iter(lists), "")
            raise TopologyError(f"{self.describe(f'{base}/{first}')}: missing")
        return None

    def integer(self, path: str, *, required: bool = False) -> int | None:
        text = self.text(path, required=required)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            if required:
                raise TopologyError(f"{self.describe(path)}: not an integer: {text!r}") from None
            return None


def parse_cpulist(text: str, where: str = "cpu list") -> CPUSet:
    """Linux list format ("0-3,8", "" = empty); newlines count as separators."""
    mask = 0
    for raw in text.replace("\n", ",").split(","):
        piece = raw.strip()
        if not piece:
            continue
        first, dash, last = piece.partition("-")
        try:
            start = int(first)
            end = int(last) if dash else start
        except ValueError:
            raise TopologyError(f"{where}: invalid cpu list {text!r}") from None
        if start < 0 or end < start:
            raise TopologyError(f"{where}: invalid cpu list {text!r}")
        mask |= ((1 << (end - start + 1)) - 1) << start
    return CPUSet(mask)


def parse_cpumask(text: str, where: str = "cpu mask") -> CPUSet:
    """Linux mask format: comma-separated 32-bit hex words, most significant first."""
    digits = text.replace(",", "").strip()
    digits = digits.removeprefix("0x")
    if not digits:
        return CPUSet()
    try:
        return CPUSet(int(digits, 16))
    except ValueError:
        raise TopologyError(f"{where}: invalid cpu mask {text!r}") from None
