"""``podshim admit / remove / state / replay``: inputs, output formats, error paths, ``--socket``."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.frontends import render
from shim.frontends.cli import main
from shim.frontends.protocol import Admit, FrameDecoder, Ok, Remove, State, decode_request, encode_frame
from shim.messages import Admitted, ContainerAssignment, HintWire, MemoryAssignment, PodAssignment, Rejected
from shim.topology.generate import generate
from shim.topology.jsonfile import dumps_topology

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "pods"
TWO_SOCKET = REPO / "examples" / "topologies" / "2socket-ht.json"

NO_UID = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
  - name: a
    resources: {limits: {cpu: "2", memory: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, uid: fixed-uid}
spec:
  containers:
  - name: a
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    path = tmp_path / "machine.json"
    path.write_text(dumps_topology(generate(sockets=2, cores_per_socket=4, memory_per_numa=8 << 30)))
    return path


def test_stdin_several_documents_and_derived_uid(capsys: pytest.CaptureFixture[str], machine: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(NO_UID))
    code, out, err = run(capsys, "admit", "-", "--topology", machine, "--output", "json")
    assert (code, err) == (0, "")
    web, db = json.loads(out)["pods"]
    assert web["uid_derived"] is True and db["uid_derived"] is False and db["uid"] == "fixed-uid"
    assert web["namespace"] == "shop" and web["name"] == "web"
    assert [c["isolation"] for c in web["containers"]] == ["container"]
    assert [c["isolation"] for c in db["containers"]] == ["host"]  # BestEffort: the node's shared pool
    monkeypatch.setattr("sys.stdin", io.StringIO(NO_UID))
    code, table, _ = run(capsys, "admit", "-", "--topology", machine)
    assert code == 0 and ", derived from namespace/name): admitted" in table.splitlines()[0]
    assert "pod shop/web" in table and "derived" not in table.split("pod default/db")[1]


def test_examples_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "admit", *sorted(EXAMPLES.glob("pod-scope-*.yaml")), "--topology", TWO_SOCKET)
    assert code == 1  # the admission-failure example is rejected
    assert "REJECTED EmptyPodSharedPoolError" in out
    assert "CONTAINER  KIND     CPUS" in out and "sidecar" in out


def test_a_file_without_pods_is_an_input_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               machine: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    code, out, err = run(capsys, "admit", empty, "--topology", machine)
    assert (code, out) == (2, "") and "empty.yaml: no pod in this file" in err


def test_state_without_state_dir_shows_the_empty_node(capsys: pytest.CaptureFixture[str], machine: Path) -> None:
    code, out, _ = run(capsys, "state", "--topology", machine, "--output", "json")
    document = json.loads(out)
    assert code == 0 and document["pods"] == []
    assert document["free"] == {**document["free"], "shared_cpus": "0-7", "reserved_cpus": "0",
                                "allocatable_cpus": "1-7"}
    assert {(m["numa"], m["resource"]) for m in document["free"]["memory"]} >= {(0, "memory"), (1, "memory")}


def test_state_never_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path, machine: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    code, _, _ = run(capsys, "state", "--topology", machine, "--state-dir", state)
    assert code == 0 and sorted(p.name for p in state.iterdir()) == [".podshim.lock"]
    code, _, err = run(capsys, "state", "--topology", machine, "--state-dir", tmp_path / "missing")
    assert code == 2 and "no such directory" in err


def test_replay_input_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "replay", tmp_path / "none.jsonl")
    assert code == 2 and "cannot read" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"podshim": "0"}\nnot json\n')
    code, _, err = run(capsys, "replay", bad, "--check")
    assert code == 2 and "trace line 2" in err
    toy = tmp_path / "toy.jsonl"
    toy.write_text('{"podshim": "0"}\n')
    code, _, err = run(capsys, "replay", toy)
    assert code == 2 and "not a podshim node trace" in err


def test_render_rejected_and_admitted() -> None:
    rejected = render.pod_result(Rejected(pod_uid="u", name="n", reason="R", message="why",
                                          hint=HintWire(numa=(0, 1), preferred=False)))
    assert rejected == {"uid": "u", "name": "n", "admitted": False, "reason": "R", "message": "why",
                        "hint": {"numa": [0, 1], "preferred": False}, "pod": None, "containers": []}
    admitted = render.pod_result(Admitted(
        pod_uid="u", name="n", hint=HintWire(numa=None, preferred=True),
        pod=PodAssignment(cpus="1-2", memory=MemoryAssignment(numa=(1,), size=3 << 30)),
        containers=(ContainerAssignment(name="c", kind="sidecar", cpus="1", mems="1", isolation="container",
                                        cpu_quota="unlimited"),)))
    assert admitted["pod"] == {"cpus": "1-2", "memory": {"numa": [1], "bytes": 3 << 30}}
    assert admitted["hint"] == {"numa": None, "preferred": True}
    table = render.admit_table([admitted, rejected])
    assert "pod bubble: cpus 1-2, memory 3Gi on NUMA {1}" in table
    assert "hint NUMA any (preferred)" in table and "REJECTED R: why" in table
    assert all(line == line.rstrip() for line in table.splitlines())


# --- --socket against a stand-in daemon ------------------------------------------------------


class FakeDaemon:
    """Answers each request with ``answers[type]`` and keeps the requests."""

    def __init__(self, path: Path, answers: dict[type, Any]) -> None:
        self.answers = answers
        self.requests: list[Any] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                decoder = FrameDecoder(1 << 20)
                while True:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    for frame in decoder.feed(chunk):
                        request = decode_request(frame)
                        self.requests.append(request)
                        connection.sendall(encode_frame(Ok(result=self.answers[type(request)])))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, FakeDaemon]]:
    path = tmp_path / "d.sock"
    answers = {
        Admit: {"pods": [{"uid": "fixed-uid", "name": "db", "admitted": False, "reason": "X", "message": "m",
                          "hint": None, "pod": None, "containers": []}]},
        Remove: {"pod_uid": "fixed-uid", "container": None},
        State: {"policies": {"cpu": "static", "memory": "Static"}, "pods": [],
                "free": {"shared_cpus": "0-3", "reserved_cpus": "0", "allocatable_cpus": "1-3", "memory": []}},
    }
    fake = FakeDaemon(path, answers)
    yield path, fake
    fake.server.close()


def test_socket_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         daemon: tuple[Path, FakeDaemon]) -> None:
    path, fake = daemon
    pods = tmp_path / "p.yaml"
    pods.write_text(NO_UID.split("---\n")[1])
    code, out, err = run(capsys, "admit", pods, "--socket", path, "--output", "json")
    assert (code, err) == (1, "")
    [result] = json.loads(out)["pods"]
    assert result["reason"] == "X" and result["uid_derived"] is False
    assert isinstance(fake.requests[0], Admit) and fake.requests[0].to_pods()[0].uid == "fixed-uid"
    code, out, _ = run(capsys, "remove", "fixed-uid", "--socket", path)
    assert code == 0 and out == "removed pod fixed-uid\n"
    assert fake.requests[1] == Remove(pod_uid="fixed-uid", container=None)
    code, out, _ = run(capsys, "state", "--socket", path)
    assert code == 0 and "allocatable 1-3" in out
    code, _, err = run(capsys, "admit", pods, "--socket", path, "--trace", tmp_path / "t")
    assert code == 2 and "--trace" in err
