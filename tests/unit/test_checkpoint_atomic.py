"""Atomic checkpoint writes: the old file survives any failure and no temp file is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.checkpoint import atomic
from shim.checkpoint.atomic import read_text_or_none, write_atomic


def test_write_then_read(tmp_path: Path) -> None:
    target = tmp_path / "cpu_manager_state"
    write_atomic(target, '{"a":"é"}')
    assert read_text_or_none(target) == '{"a":"é"}'
    write_atomic(target, "second")
    assert read_text_or_none(target) == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu_manager_state"]


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read_text_or_none(tmp_path / "absent") is None


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.write_bytes(b'{"a":"\xff"}')
    assert read_text_or_none(target) == '{"a":"\ufffd"}'


def test_failure_during_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "memory_manager_state"
    write_atomic(target, "old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomic(target, "new content that never lands")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory_manager_state"]


def test_failed_rename_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    # The target is a non-empty directory: the rename over it fails after the temp file was written.
    target = tmp_path / "state"
    target.mkdir()
    (target / "keep").write_text("old")
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert (target / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_interrupted_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state"
    write_atomic(target, "old")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_mode_is_applied(tmp_path: Path) -> None:
    target = tmp_path / "state"
    write_atomic(target, "x", mode=0o600)
    assert os.stat(target).st_mode & 0o777 == 0o600
