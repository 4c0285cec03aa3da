"""Helpers for the runc end-to-end daemon tests: ``podshim serve`` as a process, hooks in client mode.

A :class:`DaemonLab` is a :class:`~hook_runc_support.Lab` (busybox bundles, cgroup parent,
cleanup) whose containers' createRuntime/poststop hooks run ``podshim hook --socket SOCK``, so
every decision is the daemon's. The daemon serves a socket in a short temporary directory (a
Unix socket path is limited to 107 bytes, and pytest's ``tmp_path`` can be long) with the lab's
state directory, pod directory and a kubelet config whose reconcile period is one second; its
stdout and stderr (the structured decision log) go to a file, never to a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hook_runc_support import KUBELET_CONFIG, REPO, Lab

from shim.frontends.client import Client, DaemonError

T = TypeVar("T")

RECONCILE_PERIOD = "1s"
DAEMON_CONFIG = KUBELET_CONFIG + f"cpuManagerReconcilePeriod: {RECONCILE_PERIOD}\n"
HOOK_TIMEOUT = "30"


def python_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (a clean clone finds ``shim``
    even when the venv's editable install points elsewhere)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Poll ``probe`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (its last answer is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(interval)


class DaemonLab(Lab):
    """A Lab whose hooks forward to a ``podshim serve`` subprocess (started by :meth:`start_daemon`)."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.config.write_text(DAEMON_CONFIG)
        self.socket_dir = Path(tempfile.mkdtemp(prefix="podshim-d-"))
        self.socket = str(self.socket_dir / "d.sock")
        self.daemon_log = base / "daemon.log"
        self.daemon: subprocess.Popen[bytes] | None = None

    # -- the hooks: client mode only (no --state-dir, so no embedded fallback) ---------------
    def hook(self, stage: str) -> dict[str, Any]:
        argv = [sys.executable, str(REPO / "scripts" / "podshim-hook"), "--socket", self.socket, "--timeout",
                HOOK_TIMEOUT, stage]
        return {"path": sys.executable, "args": argv, "env": [f"PYTHONPATH={REPO}"], "timeout": 60}

    # -- the daemon ---------------------------------------------------------------------------
    def serve_command(self) -> list[str]:
        return [
            sys.executable, "-m", "shim", "serve",
            "--config", str(self.config), "--sysfs-root", "/", "--state-dir", str(self.state_dir),
            "--socket", self.socket, "--pod-dir", str(self.pod_dir), "--pod-scan-interval", "0.5",
        ]

    def start_daemon(self, timeout: float = 60.0) -> None:
        """Start the daemon and wait until it answers Health (it restores before serving)."""
        with open(self.daemon_log, "ab") as log:
            self.daemon = subprocess.Popen(self.serve_command(), stdout=log, stderr=log, env=python_env(),
                                           stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError(f"podshim serve exited {self.daemon.returncode}:\n{self.log_text()}")
            try:
                with Client(self.socket, timeout=10) as client:
                    client.health()
                return
            except DaemonError:
                time.sleep(0.05)
        raise AssertionError(f"podshim serve did not answer within {timeout}s:\n{self.log_text()}")

    def stop_daemon(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the daemon's exit status."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(timeout=timeout)

    def client(self) -> Client:
        return Client(self.socket, timeout=30)

    def log_text(self) -> str:
        try:
            return self.daemon_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The daemon's structured log lines of one ``event`` kind."""
        found = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == kind:
                    found.append(record)
        return found

    def state_cli(self) -> dict[str, Any]:
        """``podshim state --socket SOCK --output json``, run as the CLI."""
        done = subprocess.run(
            [sys.executable, "-m", "shim", "state", "--socket", self.socket, "--output", "json"],
            capture_output=True, env=python_env(), timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        document: dict[str, Any] = json.loads(done.stdout)
        return document

    # -- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        """Containers first (their poststop hooks still find the daemon), then the daemon, the
        cgroups and the socket directory."""
        try:
            super().close()
        finally:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait()
            shutil.rmtree(self.socket_dir, ignore_errors=True)
