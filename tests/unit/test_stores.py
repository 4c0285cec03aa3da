"""Checkpoint stores: atomic, durable file writes; the in-memory store; the state-dir lock."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from shim.actors import stores
from shim.actors.stores import FileCheckpointStore, MemoryCheckpointStore, StateLockBusy, state_lock

NAME = "cpu_manager_state"


def test_memory_store_round_trip_and_counts() -> None:
    store = MemoryCheckpointStore({"memory_manager_state": "{}"})
    assert store.load(NAME) is None
    assert store.load("memory_manager_state") == "{}"
    store.save(NAME, "a")
    store.save(NAME, "b")
    assert store.load(NAME) == "b"
    assert store.saves == {NAME: 2}


def test_file_store_writes_and_reads(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "state")
    assert store.load(NAME) is None
    store.save(NAME, '{"policyName":"static"}\n')
    assert store.load(NAME) == '{"policyName":"static"}\n'
    store.save(NAME, "second")
    assert (tmp_path / "state" / NAME).read_text() == "second"
    assert os.listdir(tmp_path / "state") == [NAME]
    assert stat.S_IMODE((tmp_path / "state" / NAME).stat().st_mode) == 0o644


def test_file_store_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[bool, bool]] = []  # (is a directory, target already renamed)
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / NAME).exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    FileCheckpointStore(tmp_path).save(NAME, "x")
    # The data is durable before the rename, the rename durable after it.
    assert synced == [(False, False), (True, True)]


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    store = FileCheckpointStore(tmp_path)
    store.save(NAME, "old state")

    if failing == "write":
        real_write = os.write

        def short_then_full(fd: int, data: bytes | memoryview) -> int:
            real_write(fd, bytes(data[:3]))  # part of the text reaches the temp file, then the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", short_then_full)
    elif failing == "fsync":

        def failing_fsync(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing_fsync)
    else:

        def failing_replace(src: str, dst: str) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "replace", failing_replace)

    with pytest.raises(OSError) as caught:
        store.save(NAME, "new state that must not be seen half written")
    assert caught.value.errno in (errno.ENOSPC, errno.EIO, errno.EXDEV)
    monkeypatch.undo()
    assert store.load(NAME) == "old state"
    assert os.listdir(tmp_path) == [NAME]


def test_partial_os_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def two_bytes_at_a_time(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:2]))

    monkeypatch.setattr(os, "write", two_bytes_at_a_time)
    FileCheckpointStore(tmp_path).save(NAME, "0123456789")
    monkeypatch.undo()
    assert (tmp_path / NAME).read_text() == "0123456789"


def test_a_holding_batch_writes_nothing_until_flush_then_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsynced: list[str] = []  # "file" or "dir", in order
    real_fsync = os.fsync

    def noting(fd: int) -> None:
        fsynced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", noting)
    store = FileCheckpointStore(tmp_path)
    store.save(NAME, "before")
    del fsynced[:]
    store.begin_batch(hold=True)
    assert not store.holding
    store.save(NAME, "first")
    store.save("memory_manager_state", "m")
    store.save(NAME, "newest")
    assert store.holding and fsynced == []
    assert (tmp_path / NAME).read_text() == "before"  # nothing on disk yet
    assert store.load(NAME) == "newest"  # but the store answers with what it holds
    with pytest.raises(ValueError, match="invalid checkpoint name"):
        store.save("../escape", "x")  # a bad name is refused when saved, not when flushed
    assert store.end_batch()
    store.flush()
    # one write per name (its newest text), then one directory fsync
    assert fsynced == ["file", "file", "dir"]
    assert (tmp_path / NAME).read_text() == "newest"
    assert (tmp_path / "memory_manager_state").read_text() == "m"
    assert sorted(os.listdir(tmp_path)) == ["cpu_manager_state", "memory_manager_state"]
    # the batch is over: saves are written (and synced) at once again
    del fsynced[:]
    store.save(NAME, "after")
    assert fsynced == ["file", "dir"] and (tmp_path / NAME).read_text() == "after"


def test_a_flush_inside_a_holding_batch_keeps_holding(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    store.begin_batch(hold=True)
    store.save(NAME, "one")
    store.flush()
    assert (tmp_path / NAME).read_text() == "one" and not store.holding
    store.save(NAME, "two")
    assert store.holding and (tmp_path / NAME).read_text() == "one"
    assert store.end_batch()
    store.flush()
    assert (tmp_path / NAME).read_text() == "two"
    store.begin_batch(hold=True)
    assert not store.end_batch()  # a batch that saved nothing leaves nothing to flush


def test_a_failed_held_write_keeps_the_old_file_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileCheckpointStore(tmp_path)
    store.save(NAME, "old state")
    store.begin_batch(hold=True)
    store.save(NAME, "new state")
    store.end_batch()
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        store.flush()
    assert (tmp_path / NAME).read_text() == "old state"
    assert os.listdir(tmp_path) == [NAME]  # no temporary file left


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../escape", "nul\0byte"])
def test_names_are_single_path_components(tmp_path: Path, bad: str) -> None:
    for store in (FileCheckpointStore(tmp_path), MemoryCheckpointStore()):
        with pytest.raises(ValueError, match="invalid checkpoint name"):
            store.save(bad, "x")
        with pytest.raises(ValueError, match="invalid checkpoint name"):
            store.load(bad)


def test_state_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with state_lock(directory) as path:
        assert path == str(directory / stores.LOCK_NAME)
        with pytest.raises(StateLockBusy, match="held by another process"), state_lock(directory, blocking=False):
            pass
    with state_lock(directory, blocking=False):
        pass
