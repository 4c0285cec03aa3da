"""``podshim hook --socket``: the HookEvent sent over JSON framing, exit codes from the daemon's
answers, the daemon-down failure and fallback, the quick cgroup resolver, and the imports the
client mode must not pay for. A fake daemon (a thread speaking length-prefixed JSON) answers."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hook_world import HookWorld, pod, podshim_annotations, res
from support import script_probe

from shim.cgroups import paths
from shim.frontends import cli, client, hook, oci

REPO = Path(__file__).resolve().parents[2]

EXCL = pod("excl", "uid-excl", [{"name": "main", "resources": res("2", "1Gi")}], res("2", "1Gi"))


class FakeDaemon:
    """Accepts connections on ``path``; each gets the next queued reply (a dict sent as a JSON
    frame, or raw bytes) and the decoded request is recorded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.replies: list[dict[str, Any] | bytes] = []
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(json.loads(data[4:]))
                reply = self.replies.pop(0) if self.replies else {"type": "Ok", "result": {"action": "skipped"}}
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                conn.sendall(payload if isinstance(reply, bytes) else struct.pack(">I", len(payload)) + payload)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HookWorld:
    return HookWorld(tmp_path, monkeypatch)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "d.sock")
    yield fake
    fake.close()


def _run(world: HookWorld, argv: list[str], state: dict[str, Any]) -> int:
    world.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(state).encode())))
    return cli.main(argv)


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_create_sends_a_hook_event_with_identity_cgroup_and_state(world: HookWorld, daemon: FakeDaemon) -> None:
    pid = os.getpid()  # a real process: its cgroup is resolved on this host
    annotations = {"io.kubernetes.cri.sandbox-uid": "uid-excl", "io.kubernetes.cri.container-name": "main",
                   "io.kubernetes.cri.container-type": "container"}
    state = world.container("c1", annotations, pid=pid)
    state["annotations"] = {"extra": "from-state"}
    daemon.replies.append({"type": "Ok", "result": {"action": "pinned", "cpus": "1-2"}})
    assert _run(world, ["hook", "--socket", daemon.path, "createRuntime"], state) == 0
    (request,) = daemon.requests
    bundle = oci.load_config(state["bundle"])
    expected_cgroup = hook._resolve_cgroup(paths.detect_mounts("/"), "/", oci.parse_state(json.dumps(state)), bundle)
    assert request == {
        "type": "HookEvent",
        "stage": "createRuntime",
        "state": state,
        "annotations": {**annotations, "extra": "from-state"},
        "pod_uid": "uid-excl",
        "container": "main",
        "cgroup": expected_cgroup,
        "pid": pid,
    }


def test_poststop_sends_no_cgroup_and_prestart_is_create(world: HookWorld, daemon: FakeDaemon) -> None:
    state = world.container("c1", podshim_annotations("uid-excl", "main"), pid=os.getpid())
    assert _run(world, ["hook", "--socket", daemon.path, "poststop"], state) == 0
    assert _run(world, ["hook", "--socket", daemon.path, "prestart"], state) == 0
    assert [r["stage"] for r in daemon.requests] == ["poststop", "createRuntime"]
    assert daemon.requests[0]["cgroup"] is None and daemon.requests[1]["cgroup"] is not None


def test_not_a_pod_container_never_asks(world: HookWorld, daemon: FakeDaemon) -> None:
    sandbox = {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-uid": "uid-excl"}
    assert _run(world, ["hook", "--socket", daemon.path, "createRuntime"], world.container("s", sandbox)) == 0
    assert daemon.requests == []


def test_rejection_exits_1_with_one_line(
    world: HookWorld, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.replies.append({"type": "Ok", "result": {"action": "rejected", "pod_uid": "uid-excl", "container": "main",
                                                     "reason": "UnexpectedAdmissionError",
                                                     "message": "not enough cpus available"}})
    state = world.container("c1", podshim_annotations("uid-excl", "main"), pid=os.getpid())
    assert _run(world, ["hook", "--socket", daemon.path, "createRuntime"], state) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == "podshim hook: pod uid-excl rejected: UnexpectedAdmissionError: not enough cpus available"


@pytest.mark.parametrize(("code", "exit_code"), [("apply_failed", 3), ("unavailable", 3), ("bad_request", 2)])
def test_error_reply_fails(
    world: HookWorld, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], code: str, exit_code: int
) -> None:
    daemon.replies.append({"type": "Error", "code": code, "message": "/sys/fs/cgroup/x: Permission denied"})
    state = world.container("c1", podshim_annotations("uid-excl", "main"), pid=os.getpid())
    assert _run(world, ["hook", "--socket", daemon.path, "createRuntime"], state) == exit_code
    line = _one_line(capsys.readouterr().err)
    assert line == f"podshim hook: podshim daemon: {code}: /sys/fs/cgroup/x: Permission denied"


def test_garbled_or_cut_reply_fails_with_one_line(
    world: HookWorld, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.replies.append(struct.pack(">I", 100) + b'{"type"')  # the daemon dies mid-reply
    state = world.container("c1", podshim_annotations("uid-excl", "main"), pid=os.getpid())
    assert _run(world, ["hook", "--socket", daemon.path, "createRuntime"], state) == 3
    assert "closed the connection before the reply (11 of 104 bytes)" in _one_line(capsys.readouterr().err)


def test_daemon_down_exits_3(world: HookWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.add_pod(EXCL)
    state = world.container("c1", podshim_annotations("uid-excl", "main"), pid=100)
    missing = str(world.base / "nobody.sock")
    assert _run(world, ["hook", "--socket", missing, "createRuntime"], state) == 3
    assert _one_line(capsys.readouterr().err) == (
        f"podshim hook: podshim daemon not reachable at {missing}: No such file or directory"
    )
    assert not world.state_dir.exists()


def test_daemon_down_with_state_dir_falls_back_to_embedded(
    world: HookWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_pod(EXCL)
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    missing = str(world.base / "nobody.sock")
    argv = ["hook", "--socket", missing, *world.args("createRuntime")[1:]]
    assert _run(world, argv, state) == 0
    assert "deciding in embedded mode" in _one_line(capsys.readouterr().err)
    assert world.applied() == [("kubepods/c-main", world.cpu_state()["entries"]["uid-excl"]["main"])]


def test_daemon_that_answers_is_not_second_guessed(world: HookWorld, daemon: FakeDaemon) -> None:
    # With --state-dir too, an answer (even an error) is final: no embedded decision on top.
    world.add_pod(EXCL)
    daemon.replies.append({"type": "Error", "code": "apply_failed", "message": "x"})
    state = world.container("c-main", podshim_annotations("uid-excl", "main"), pid=100)
    assert _run(world, ["hook", "--socket", daemon.path, *world.args("createRuntime")[1:]], state) == 3
    assert not world.state_dir.exists() and world.writer.targets == []


HEAVY_FOR_THE_CLIENT = (
    # each of these costs the hook about as much as starting the interpreter (or more)
    "trio", "yaml", "msgspec", "dataclasses", "typing", "argparse", "re", "json", "enum", "socket", "runpy",
)
HEAVY_SHIM = ("shim.pod", "shim.messages", "shim.cgroups", "shim.frontends.protocol", "shim.frontends.cli",
              "shim.runtime", "shim.actors")
@pytest.mark.parametrize("stage", ["createRuntime", "poststop"])
def test_client_mode_imports_nothing_heavy(tmp_path: Path, stage: str) -> None:
    # The podshim-hook script as a runtime runs it; what the interpreter's start-up (site, the
    # editable install's finder) loaded before the script runs is not counted.
    fake = FakeDaemon(tmp_path / "d.sock")
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"annotations": podshim_annotations("u", "c")}))
    state = json.dumps({"id": "c", "status": "creating", "bundle": str(bundle), "pid": os.getpid()})
    script = str(REPO / "scripts" / "podshim-hook")
    probe = script_probe(script, ["--socket", fake.path, stage], packages=HEAVY_FOR_THE_CLIENT, modules=HEAVY_SHIM)
    try:
        done = subprocess.run([sys.executable, "-c", probe], input=state.encode(), capture_output=True, check=True)
    finally:
        fake.close()
    assert done.stdout.decode().split(" ", 1) == ["0", "[]\n"], done.stderr.decode()
    assert fake.requests and fake.requests[0]["type"] == "HookEvent" and fake.requests[0]["stage"] == stage


def test_podshim_hook_through_the_cli_takes_the_same_fast_path(tmp_path: Path) -> None:
    fake = FakeDaemon(tmp_path / "d.sock")
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"annotations": podshim_annotations("u", "c")}))
    state = json.dumps({"id": "c", "status": "creating", "bundle": str(bundle), "pid": os.getpid()})
    probe = (
        "import sys\n"
        "from shim.frontends.cli import main\n"
        f"code = main(['hook', '--socket', {fake.path!r}, 'createRuntime'])\n"
        "print(code, sorted(m for m in sys.modules if m in ('argparse', 'json', 'msgspec')))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", probe], input=state.encode(), capture_output=True, check=True)
    finally:
        fake.close()
    assert done.stdout.decode() == "0 []\n", done.stderr.decode()


# --- the quick cgroup resolver agrees with shim.cgroups.paths -----------------------------------


V1_MOUNTS = (
    "30 25 0:26 / /sys/fs/cgroup/cpuset rw,nosuid shared:9 - cgroup cgroup rw,cpuset\n"
    "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct\n"
)
V2_MOUNT = "40 25 0:35 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n"


def _fake_root(tmp_path: Path, mountinfo: str, proc_cgroup: str, pid: int = 42) -> Path:
    root = tmp_path / "root"
    (root / "proc/self").mkdir(parents=True)
    (root / f"proc/{pid}").mkdir(parents=True)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    (root / f"proc/{pid}/cgroup").write_text(proc_cgroup)
    return root


def _full(root: Path, pid: int = 42) -> str:
    state = oci.OCIState("c", "creating", "/b", pid=pid)
    bundle = oci.BundleConfig("/b/config.json", {}, None, {})
    return hook._resolve_cgroup(paths.detect_mounts(root), root, state, bundle)


@pytest.mark.parametrize(
    ("mountinfo", "proc"),
    [
        (V1_MOUNTS, "5:cpuset:/kubepods/pod1/c1\n4:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n"),
        (V2_MOUNT, "0::/kubepods.slice/cri-containerd-abc.scope/container\n"),
        (V1_MOUNTS + V2_MOUNT, "5:cpuset:/a/b\n4:cpu,cpuacct:/a/b\n1:name=systemd:/x\n0::/a/b\n"),
        (V1_MOUNTS, "5:cpuset:/\n4:cpu,cpuacct:/\n"),
    ],
)
def test_quick_cgroup_matches_the_full_resolver(tmp_path: Path, mountinfo: str, proc: str) -> None:
    root = _fake_root(tmp_path, mountinfo, proc)
    quick = hook.quick_cgroup(42, str(root))
    assert quick is not None and quick == _full(root)


@pytest.mark.parametrize(
    ("mountinfo", "proc"),
    [
        (V1_MOUNTS, "5:cpuset:/a\n4:cpu,cpuacct:/b\n"),  # hierarchies differ: the full resolver says pid:N
        (V1_MOUNTS.replace(" / /sys/fs/cgroup/cpuset", " /sub /sys/fs/cgroup/cpuset"),
         "5:cpuset:/sub/a\n4:cpu:/sub/a\n"),  # a subtree mount: the full resolver strips its root
        (V1_MOUNTS, "4:cpu,cpuacct:/a\n"),  # no cpuset line
        (V1_MOUNTS, "5:cpuset:/a/../../etc\n4:cpu,cpuacct:/a/../../etc\n"),
        ("", "0::/a\n"),  # no cgroup mount at all
        (V1_MOUNTS, "garbage\n"),
    ],
)
def test_quick_cgroup_leaves_the_hard_cases_to_the_full_resolver(tmp_path: Path, mountinfo: str, proc: str) -> None:
    assert hook.quick_cgroup(42, str(_fake_root(tmp_path, mountinfo, proc))) is None


def test_quick_cgroup_needs_a_pid(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, V2_MOUNT, "0::/a\n")
    assert hook.quick_cgroup(None, str(root)) is None
    assert hook.quick_cgroup(43, str(root)) is None  # no such process


def test_hook_event_payload_is_a_valid_protocol_request() -> None:
    from shim.frontends.protocol import Frame, HookEvent, decode_request

    payload = client.hook_event_payload("createRuntime", state={"id": "c", "pid": 5}, annotations={"a": "b"},
                                        pod_uid="u", container="c", cgroup="/x", pid=5)
    decoded = decode_request(Frame(payload, "json"))
    assert decoded == HookEvent(stage="createRuntime", state={"id": "c", "pid": 5}, annotations={"a": "b"},
                                pod_uid="u", container="c", cgroup="/x", pid=5)


def test_the_hook_script_reports_and_exits_with_its_code(tmp_path: Path) -> None:
    # exit_now skips the interpreter's finalization: the one-line error and the exit code must
    # still come out, through a pipe as a runtime reads them
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"annotations": podshim_annotations("u", "c")}))
    state = json.dumps({"id": "c", "status": "creating", "bundle": str(bundle), "pid": os.getpid()})
    script = str(REPO / "scripts" / "podshim-hook")
    done = subprocess.run([sys.executable, script, "--socket", str(tmp_path / "none.sock"), "createRuntime"],
                          input=state.encode(), capture_output=True)
    assert done.returncode == 3
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("podshim") and "none.sock" in lines[0], lines


def test_exit_now_flushes_buffered_output_first(tmp_path: Path) -> None:
    probe = ("import sys\n"
             "from shim.frontends.errors import exit_now\n"
             "sys.stdout.write('out' * 1000)\n"
             "sys.stderr.write('err')\n"
             "exit_now(5)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, cwd=REPO)
    assert (done.returncode, done.stdout.decode(), done.stderr.decode()) == (5, "out" * 1000, "err")
