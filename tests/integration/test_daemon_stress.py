"""Many concurrent clients admitting and removing pods over the socket: every request answered,
no CPU ever assigned twice, the state invariants hold after every step.

The default load (64 clients x 50 admit/remove rounds) fits in about a minute here; set
``PODSHIM_STRESS_CLIENTS`` / ``PODSHIM_STRESS_ROUNDS`` for a heavier local run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import trio
from daemon_world import World, pod

from shim.cpuset import CPUSet
from shim.frontends.client import Client

CLIENTS = int(os.environ.get("PODSHIM_STRESS_CLIENTS", "64"))
ROUNDS = int(os.environ.get("PODSHIM_STRESS_ROUNDS", "50"))
CORES = 32


def check_invariants(state: dict[str, Any], all_cpus: CPUSet) -> None:
    """Exclusive sets pairwise disjoint, disjoint from the shared pool, and together with it
    exactly the machine's CPUs."""
    union = CPUSet()
    for entry in state["pods"]:
        for container in entry["containers"]:
            cpus = CPUSet.parse(container["cpus"])
            assert not (union & cpus), f"CPU assigned twice: {container['cpus']} in pod {entry['uid']}"
            union = union | cpus
    shared = CPUSet.parse(state["free"]["shared_cpus"])
    assert not (union & shared), f"exclusive CPUs {union & shared} are also shared"
    assert union | shared == all_cpus


async def test_concurrent_clients_admit_and_remove(tmp_path: Path) -> None:
    world = World(tmp_path, cores=CORES)
    all_cpus = world.topology.cpu.all_cpus
    answered = [0] * CLIENTS
    admitted = [0] * CLIENTS
    failures: list[BaseException] = []

    def client_loop(index: int) -> None:
        try:
            with Client(world.socket, timeout=120) as client:
                for round_ in range(ROUNDS):
                    uid = f"c{index}-r{round_}"
                    size = 1 + (index + round_) % 2
                    result = client.admit([pod(uid, {"app": str(size)})])["pods"][0]
                    answered[index] += 1
                    if result["admitted"]:
                        admitted[index] += 1
                        assert len(CPUSet.parse(result["containers"][0]["cpus"])) == size
                    else:
                        assert result["reason"] == "UnexpectedAdmissionError", result
                    check_invariants(client.state(), all_cpus)
                    assert client.remove(uid)["removed"] is True
                    answered[index] += 1
                    check_invariants(client.state(), all_cpus)
        except BaseException as err:  # reported by the test below
            failures.append(err)

    def run_clients() -> None:
        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    async with world.running() as daemon:
        # Raw threads for the clients: trio's default thread limiter must stay free for the
        # daemon's own blocking actors.
        await trio.to_thread.run_sync(run_clients, limiter=trio.CapacityLimiter(1))
        with world.client() as client:
            final = await trio.to_thread.run_sync(client.state)
    assert not failures, failures[0]
    assert answered == [2 * ROUNDS] * CLIENTS
    assert sum(admitted) > 0
    assert final["pods"] == [] and final["free"]["shared_cpus"] == str(all_cpus)
    assert world.cpu_state()["defaultCpuSet"] == str(all_cpus)
    assert world.registry()["pods"] == {}
    assert daemon.metrics is not None
    assert daemon.metrics.value("podshim_topology_manager_admission_requests_total") == CLIENTS * ROUNDS
