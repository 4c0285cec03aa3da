"""shim.cgroups.native: the cffi helper and the Python fallback behave identically."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cgroups_helpers import IMPLEMENTATIONS, ops_for, start_threaded_child, stop_child, thread_affinities

from shim.cgroups import native
from shim.cpuset import CPUSet

ALLOWED = sorted(os.sched_getaffinity(0))


@IMPLEMENTATIONS
def test_affinity_reaches_every_thread(impl: str) -> None:
    ops = ops_for(impl)
    child = start_threaded_child()
    try:
        before = thread_affinities(child.pid)
        assert len(before) == 4
        target = [ALLOWED[-1]]
        result = ops.set_process_affinity(child.pid, target)
        assert result == native.AffinityResult(4, 0)
        assert set(thread_affinities(child.pid).values()) == {CPUSet.of(target)}
        result = ops.set_process_affinity(child.pid, ALLOWED)
        assert result.ok and result.threads == 4
        assert set(thread_affinities(child.pid).values()) == {CPUSet.of(ALLOWED)}
    finally:
        stop_child(child)


@IMPLEMENTATIONS
def test_affinity_of_missing_process_reports_enoent(impl: str) -> None:
    # pid_max is at most 2^22, so this pid never exists.
    assert ops_for(impl).set_process_affinity(2**22 + 7, ALLOWED) == native.AffinityResult(0, errno.ENOENT)


@IMPLEMENTATIONS
@pytest.mark.parametrize("cpus", [[], [-1], [4095]], ids=["empty", "negative", "offline"])
def test_affinity_with_unusable_mask_is_einval(impl: str, cpus: list[int]) -> None:
    if 4095 in cpus and (os.cpu_count() or 0) >= 4096:  # pragma: no cover - huge machines
        pytest.skip("CPU 4095 exists here")
    assert ops_for(impl).set_process_affinity(os.getpid(), cpus) == native.AffinityResult(0, errno.EINVAL)


@IMPLEMENTATIONS
def test_affinity_of_reaped_zombie_reports_esrch_or_enoent(impl: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    result = ops_for(impl).set_process_affinity(child.pid, ALLOWED)
    assert result.threads == 0
    assert result.errno in (errno.ENOENT, errno.ESRCH)


@IMPLEMENTATIONS
def test_affinity_tolerates_threads_that_exit(impl: str) -> None:
    churn = (
        "import threading, time\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    ts = [threading.Thread(target=time.sleep, args=(0.001,)) for _ in range(8)]\n"
        "    [t.start() for t in ts]\n"
        "    [t.join() for t in ts]\n"
    )
    child = subprocess.Popen([sys.executable, "-c", churn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(20):
            result = ops_for(impl).set_process_affinity(child.pid, ALLOWED)
            assert result.errno == 0
            assert result.threads >= 1
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def _tree(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / name for name in ("a", "b", "c")}
    for path in files.values():
        path.write_text("previous-long-content\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(files["a"])
    return files


@IMPLEMENTATIONS
def test_write_files_writes_and_truncates(impl: str, tmp_path: Path) -> None:
    files = _tree(tmp_path)
    codes = ops_for(impl).write_files([(str(files["a"]), "0-1"), (str(files["b"]), "")])
    assert codes == [0, 0]
    assert files["a"].read_text() == "0-1"
    assert files["b"].read_text() == ""


@IMPLEMENTATIONS
def test_write_files_per_item_errno_and_stop(impl: str, tmp_path: Path) -> None:
    files = _tree(tmp_path)
    batch = [
        (str(files["a"]), "1"),
        (str(tmp_path / "missing"), "1"),  # no O_CREAT: cgroup files always exist
        (str(tmp_path / "dir"), "1"),
        (str(tmp_path / "link"), "1"),  # O_NOFOLLOW
        (str(files["c"]), "1"),
    ]
    ops = ops_for(impl)
    assert ops.write_files(batch) == [0, errno.ENOENT, errno.ECANCELED, errno.ECANCELED, errno.ECANCELED]
    assert files["c"].read_text() == "previous-long-content\n"
    assert ops.write_files(batch, stop_on_error=False) == [0, errno.ENOENT, errno.EISDIR, errno.ELOOP, 0]
    assert files["c"].read_text() == "1"
    assert ops.write_files([]) == []


@IMPLEMENTATIONS
def test_write_files_refuses_nul_bytes(impl: str, tmp_path: Path) -> None:
    files = _tree(tmp_path)
    with pytest.raises(ValueError, match="NUL byte"):
        ops_for(impl).write_files([(str(files["a"]), "0"), (str(files["b"]), "1\x002")])
    assert files["a"].read_text() == "previous-long-content\n"


def test_both_implementations_agree_on_a_mixed_batch(tmp_path: Path) -> None:
    results = []
    for impl in ("native", "python"):
        base = tmp_path / impl
        base.mkdir()
        files = _tree(base)
        batch = [(str(files["b"]), "x" * 5000), (str(base / "nope"), "y"), (str(base / "dir"), "z")]
        results.append((ops_for(impl).write_files(batch, stop_on_error=False), files["b"].read_text()))
    assert results[0] == results[1]


def test_env_var_forces_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODSHIM_NO_NATIVE", "1")
    assert native.load().name == "python"
    monkeypatch.delenv("PODSHIM_NO_NATIVE")
    expected = "native" if native.native_module() is not None else "python"
    assert native.load().name == expected
    assert native.load(force_fallback=True).name == "python"
