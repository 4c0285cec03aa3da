"""``podshim topology`` and the command-line conventions (exit codes, one-line errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shared_paths import SYSFS_FIXTURES

from shim.frontends.cli import COMMANDS, main

MEMORYSIDECACHES = SYSFS_FIXTURES / "memorysidecaches"
REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_round_trips_through_topology_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, first, err = run(capsys, "topology", "--sysfs-root", str(MEMORYSIDECACHES), "--output", "json")
    assert (code, err) == (0, "")
    data = json.loads(first)
    assert len(data["cpus"]) == 80 and [node["id"] for node in data["numa"]] == [0, 1, 2, 3]
    saved = tmp_path / "t.json"
    saved.write_text(first)
    code, second, err = run(capsys, "topology", "--topology", str(saved), "--output", "json")
    assert (code, err) == (0, "")
    assert second == first


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "topology", "--sysfs-root", str(MEMORYSIDECACHES))
    assert code == 0
    assert "Sockets: 2  Cores: 40  SMT: on (2 threads per core)" in out
    assert "NUMA distances" in out


@pytest.mark.skipif(not Path("/sys/devices/system/cpu").is_dir(), reason="no /sys on this machine")
def test_without_flags_discovers_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "topology", "--output", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert len(data["cpus"]) == data["counts"]["num_cpus"] >= 1
    assert len(data["cpus"]) <= (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "a command is required"),
        (["nope"], "invalid choice: 'nope'"),
        (["topology", "--output", "xml"], "invalid choice: 'xml'"),
        (["topology", "--topology", "a.json", "--sysfs-root", "/"], "not allowed with argument"),
        (["topology", "--sysfs-root", "/nonexistent-root"], "/nonexistent-root/sys/devices/system/cpu: missing"),
        (["topology", "--topology", "/nonexistent.json"], "/nonexistent.json: cannot read"),
    ],
)
def test_usage_and_input_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("podshim")
    assert needle in err


def test_bad_topology_field_names_file_and_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"cpus": [{"id": 0, "socket": 0, "core": 0, "numa": 3, "uncore": 0}],
                                "numa": [{"id": 0}]}))
    code, _, err = run(capsys, "topology", "--topology", str(path))
    assert code == 2
    assert err == f"podshim: {path}: cpus[0].numa: 3 is not a node of numa[]\n"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "topology" in out
    code, out, _ = run(capsys, "topology", "--help")
    assert code == 0 and "--sysfs-root" in out


def test_commands_are_registered_lazily() -> None:
    assert [command.name for command in COMMANDS][:1] == ["topology"]
    # Building the parser for one command imports nothing heavy for the others.
    probe = (
        "import sys; from shim.frontends.cli import build_parser; build_parser(['topology']);"
        "print(sorted(m for m in sys.modules if m.startswith('shim.topology') or m in ('msgspec', 'trio')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shim", "topology", "--topology", str(REPO / "examples/topologies/2socket-ht.json")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "Sockets: 2  Cores: 40" in result.stdout
