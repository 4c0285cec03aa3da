"""The --pod-dir watcher: added files admit, removed files remove, bad files reported once."""

from __future__ import annotations

import os
from pathlib import Path

import trio
import trio.testing

from shim.frontends.podwatch import PodDirectory, PodWatcher, list_pod_files
from shim.pod import Pod
from shim.runtime.trio_runtime import RuntimeStopped


def manifest(uid: str, name: str | None = None) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name or 'pod-' + uid}, uid: {uid}}}
spec:
  containers:
  - name: app
    resources: {{limits: {{cpu: "1", memory: 1Gi}}}}
"""


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def admit(self, pod: Pod, *, source: str = "") -> object:
        self.calls.append(("admit", pod.uid))
        return None

    async def remove(self, pod_uid: str, container: str | None = None) -> None:
        self.calls.append(("remove", pod_uid))


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # a distinct mtime even on coarse-grained filesystems
    stamp = path.stat().st_mtime_ns + 1_000_000_000 * (1 + len(text) % 7)
    os.utime(path, ns=(stamp, stamp))


async def test_added_removed_and_changed_files(tmp_path: Path) -> None:
    sink = RecordingSink()
    watcher = PodWatcher(tmp_path, sink, in_thread=False)
    write(tmp_path / "a.yaml", manifest("a"))
    write(tmp_path / "two.yaml", manifest("b") + "---\n" + manifest("c"))
    (tmp_path / "notes.txt").write_text("not a pod")
    (tmp_path / ".a.yaml.swp").write_text("editor junk")
    await watcher.scan_once()
    assert sink.calls == [("admit", "a"), ("admit", "b"), ("admit", "c")]

    sink.calls.clear()
    await watcher.scan_once()  # nothing changed: nothing happens
    assert sink.calls == []

    write(tmp_path / "two.yaml", manifest("c") + "---\n" + manifest("d"))
    (tmp_path / "a.yaml").unlink()
    await watcher.scan_once()
    assert sink.calls == [("remove", "a"), ("remove", "b"), ("admit", "d")]
    assert watcher.state.owners == {"c": "two.yaml", "d": "two.yaml"}


async def test_invalid_file_is_reported_once_then_retried_when_changed(tmp_path: Path) -> None:
    sink = RecordingSink()
    watcher = PodWatcher(tmp_path, sink, in_thread=False)
    write(tmp_path / "bad.yaml", "kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, resources: "
                                 "{limits: {cpu: lots}}}]}\n")
    await watcher.scan_once()
    await watcher.scan_once()
    assert sink.calls == []
    assert len(watcher.reported) == 1
    assert watcher.reported[0].startswith(f"{tmp_path / 'bad.yaml'}: skipped:")
    assert "lots" in watcher.reported[0]

    write(tmp_path / "bad.yaml", manifest("fixed"))
    await watcher.scan_once()
    assert sink.calls == [("admit", "fixed")]
    assert len(watcher.reported) == 1


async def test_same_uid_in_two_files_is_admitted_once(tmp_path: Path) -> None:
    sink = RecordingSink()
    watcher = PodWatcher(tmp_path, sink, in_thread=False)
    write(tmp_path / "a.yaml", manifest("same", "first"))
    write(tmp_path / "b.yaml", manifest("same", "second"))
    await watcher.scan_once()
    assert sink.calls == [("admit", "same")]
    assert len(watcher.reported) == 1 and "pod same is already defined by another file" in watcher.reported[0]


async def test_missing_directory_reported_once(tmp_path: Path) -> None:
    watcher = PodWatcher(tmp_path / "absent", RecordingSink(), in_thread=False)
    await watcher.scan_once()
    await watcher.scan_once()
    assert len(watcher.reported) == 1 and "cannot list pod files" in watcher.reported[0]
    assert watcher.scans == 0


async def test_periodic_scan_on_trio_clock(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    sink = RecordingSink()
    watcher = PodWatcher(tmp_path, sink, interval=5, in_thread=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await trio.sleep(1)
        assert watcher.scans == 1 and sink.calls == []
        write(tmp_path / "late.json", '{"kind": "Pod", "metadata": {"name": "late", "uid": "late"}, '
                                      '"spec": {"containers": [{"name": "c"}]}}')
        await trio.sleep(5)
        assert watcher.scans == 2 and sink.calls == [("admit", "late")]
        await trio.sleep(50)
        assert watcher.scans == 12
        nursery.cancel_scope.cancel()


async def test_watcher_stops_quietly_when_the_runtime_stops(tmp_path: Path) -> None:
    class Stopped(RecordingSink):
        async def admit(self, pod: Pod, *, source: str = "") -> object:
            raise RuntimeStopped("podshim runtime is shutting down")

    write(tmp_path / "a.yaml", manifest("a"))
    watcher = PodWatcher(tmp_path, Stopped())
    await watcher.run()  # returns instead of raising


def test_plan_is_sans_io() -> None:
    directory = PodDirectory()
    assert directory.plan({"a.yaml": (1, 10)}).read == ["a.yaml"]
    directory.update("a.yaml", (1, 10), [])
    assert directory.plan({"a.yaml": (1, 10)}).read == []
    assert directory.plan({"a.yaml": (2, 10)}).read == ["a.yaml"]
    assert directory.mark_invalid("b.yaml", (1, 1)) and not directory.mark_invalid("b.yaml", (1, 1))
    assert directory.plan({"b.yaml": (1, 1)}).read == []
    assert directory.plan({}).removed == [] and directory.invalid == {}


def test_listing_skips_symlinks_and_directories(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text("x")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    (tmp_path / "dir.yaml").mkdir()
    assert set(list_pod_files(tmp_path)) == {"real.yaml"}
