"""Replay every recorded trace of ``corpus/`` on fresh actors: each delivery must come out
identical. A failure names the first differing message; if the change of behaviour is intended,
re-record as ``record_corpus.py``'s docstring says."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from shim.messages import Admitted, Rejected, RemoveContainer, RemovePod
from shim.runtime.node import actor_factory
from shim.runtime.recorder import load_trace
from shim.runtime.replay import replay

CORPUS = Path(__file__).resolve().parent / "corpus"
TRACES = sorted(CORPUS.glob("*.jsonl"))


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_replays_identically(path: Path) -> None:
    trace = load_trace(path)
    result = replay(trace, actor_factory())
    assert result.mismatch is None, f"{path.name}: {result.mismatch.describe()}"
    assert result.delivered == len(trace.deliveries)


def _headers() -> list[dict[str, object]]:
    return [msgspec.to_builtins(load_trace(path).header) for path in TRACES]


def test_corpus_covers_scopes_policies_and_restarts() -> None:
    assert len(TRACES) >= 20
    kubelet = [header["config"]["kubelet"] for header in _headers()]  # type: ignore[index]
    assert {k["topologyManagerScope"] for k in kubelet} == {"pod", "container"}
    assert {k["topologyManagerPolicy"] for k in kubelet} == {"none", "best-effort", "restricted", "single-numa-node"}
    restarts = [h for h in _headers() if any(h["config"]["state"].values())]  # type: ignore[index]
    assert restarts, "no trace starts from existing state files"


def test_corpus_holds_rejections_removals_sidecars_and_init_containers() -> None:
    messages = [d.msg for path in TRACES for d in load_trace(path).deliveries]
    reasons = {m.reason for m in messages if isinstance(m, Rejected)}
    assert {"EmptyPodSharedPoolError", "TopologyAffinityError", "UnexpectedAdmissionError"} <= reasons
    assert any(isinstance(m, RemoveContainer) for m in messages)
    assert any(isinstance(m, RemovePod) for m in messages)
    kinds = {c.kind for m in messages if isinstance(m, Admitted) for c in m.containers}
    assert kinds == {"init", "sidecar", "app"}


def test_a_changed_decision_is_reported_at_its_message(tmp_path: Path) -> None:
    # The replay must catch a decision that differs, not only a malformed trace.
    source = CORPUS / "pod-best-effort-kep-table.jsonl"
    lines = source.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"type":"Admitted"' in line)
    lines[index] = lines[index].replace('"isolation":"container"', '"isolation":"pod"', 1)
    tampered = tmp_path / "t.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    result = replay(load_trace(tampered), actor_factory())
    assert result.mismatch is not None
    assert result.mismatch.seq == msgspec.json.decode(lines[index])["seq"]
