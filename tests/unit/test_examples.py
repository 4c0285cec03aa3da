"""The example configurations load, and the 16-NUMA example machine needs the 16-NUMA one."""

from __future__ import annotations

import pytest
from shared_paths import REPO

from shim.config import load_config
from shim.frontends.cli import main

EXAMPLES = REPO / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("kubelet-config*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path: object) -> None:
    config = load_config(path)  # type: ignore[arg-type]
    assert config.cpu_manager_policy == "static" and config.memory_manager_policy == "Static"


def test_more_than_eight_numa_nodes_needs_max_allowable(capsys: pytest.CaptureFixture[str]) -> None:
    pod = str(EXAMPLES / "pods" / "pod-scope-mixed.yaml")
    topology = str(EXAMPLES / "topologies" / "16numa-1024cpu.json")
    assert main(["admit", pod, "--topology", topology]) == 3
    assert "unsupported on machines with more than 8 NUMA Nodes" in capsys.readouterr().err
    config = str(EXAMPLES / "kubelet-config-16numa.yaml")
    assert main(["admit", pod, "--topology", topology, "--config", config, "--output", "json"]) == 0
    assert '"admitted": true' in capsys.readouterr().out
