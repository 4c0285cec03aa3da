"""podshim-runc: argument parsing, hook injection into config.json, exec of the real runc."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shim.frontends import runc_wrapper as wrapper

POD = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-uid": "u1",
       "io.kubernetes.cri.container-name": "app"}
ENV = {"PODSHIM_HOOK": "/usr/local/bin/podshim", "PODSHIM_HOOK_ARGS": "--state-dir '/var/lib/pod shim'"}


@pytest.mark.parametrize(
    ("argv", "command", "index"),
    [
        (["--root", "/run/r", "--log", "/l", "--systemd-cgroup", "create", "--bundle", "/b", "id"], "create", 5),
        (["--debug", "run", "-b", "/b", "id"], "run", 1),
        (["state", "id"], "state", 0),
        (["--version"], None, 1),
    ],
)
def test_split_command(argv: list[str], command: str | None, index: int) -> None:
    assert wrapper.split_command(argv) == (command, index)


def test_bundle_forms() -> None:
    assert wrapper.bundle_of(["--bundle", "/b1", "id"], "/cwd") == "/b1"
    assert wrapper.bundle_of(["-b=rel", "id"], "/cwd") == "/cwd/rel"
    assert wrapper.bundle_of(["--pid-file", "/p", "id"], "/cwd") == "/cwd"


def _bundle(tmp_path: Path, annotations: dict[str, str]) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "annotations": annotations}))
    (tmp_path / "config.json").chmod(0o600)
    return tmp_path


def test_injects_both_stages_once(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, POD)
    assert wrapper.modify_bundle(str(bundle), ENV)
    assert not wrapper.modify_bundle(str(bundle), ENV)  # idempotent
    document: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    for stage in ("createRuntime", "poststop"):
        (entry,) = document["hooks"][stage]
        assert entry["path"] == "/usr/local/bin/podshim"
        assert entry["args"] == ["/usr/local/bin/podshim", "hook", "--state-dir", "/var/lib/pod shim", stage]
    assert stat.S_IMODE((bundle / "config.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("installed", [True, False])
def test_default_hook_is_the_script_beside_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: bool
) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = str(bin_dir / "python")
    monkeypatch.setattr(wrapper.sys, "executable", python)
    if installed:
        (bin_dir / "podshim-hook").write_text("#!/bin/sh\n")
        (bin_dir / "podshim-hook").chmod(0o755)
    bundle = _bundle(tmp_path, POD)
    wrapper.modify_bundle(str(bundle), {})
    entry = json.loads((bundle / "config.json").read_text())["hooks"]["createRuntime"][0]
    expected = [str(bin_dir / "podshim-hook")] if installed else [python, "-m", "shim", "hook"]
    assert entry["path"] == expected[0] and entry["args"] == [*expected, "createRuntime"]
    assert entry["timeout"] == 30


def test_podshim_hook_script_named_in_the_environment(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, POD)
    wrapper.modify_bundle(str(bundle), {"PODSHIM_HOOK": "/opt/podshim/bin/podshim-hook"})
    entry = json.loads((bundle / "config.json").read_text())["hooks"]["poststop"][0]
    assert entry["args"] == ["/opt/podshim/bin/podshim-hook", "poststop"]


@pytest.mark.parametrize("annotations", [{**POD, "io.kubernetes.cri.container-type": "sandbox"}, {}])
def test_sandboxes_and_plain_containers_untouched(tmp_path: Path, annotations: dict[str, str]) -> None:
    bundle = _bundle(tmp_path, annotations)
    before = (bundle / "config.json").read_text()
    assert not wrapper.modify_bundle(str(bundle), ENV)
    assert (bundle / "config.json").read_text() == before


def test_main_execs_runc_with_same_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _bundle(tmp_path, POD)
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(wrapper, "exec_runc", lambda path, args: calls.append((path, list(args))))
    monkeypatch.setenv("PODSHIM_RUNC", "/opt/runc")
    argv = ["--root", "/run/r", "create", "--bundle", str(bundle), "ctr"]
    assert wrapper.main(argv) == 0
    assert calls == [("/opt/runc", ["/opt/runc", *argv])]
    assert "hooks" in json.loads((bundle / "config.json").read_text())


def test_main_reports_unreadable_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PODSHIM_RUNC", "/opt/runc")
    monkeypatch.setattr(wrapper, "exec_runc", lambda path, args: pytest.fail("runc must not run"))
    assert wrapper.main(["run", "-b", str(tmp_path / "missing"), "ctr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("podshim-runc: ") and "config.json: cannot read" in err and err.count("\n") == 1


def test_operations_other_than_create_import_only_os_and_sys() -> None:
    # containerd runs runc (so the wrapper) for every operation on every container.
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from shim.frontends import runc_wrapper\n"
        "runc_wrapper.exec_runc = lambda path, argv: None\n"
        "code = runc_wrapper.main(['--root', '/run/runc', 'state', 'abc'])\n"
        "print(code, sorted(m for m in set(sys.modules) - before if not m.startswith(('shim', '__future__'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "PODSHIM_RUNC": "/bin/true"})
    assert done.stdout == "0 []\n", done.stderr
