"""``podshim state``: current assignments per pod and container, pod bubbles, and free pools.

Locally the node is rebuilt from the state files (validated as at start-up) without writing
anything; without ``--state-dir`` it shows the empty node the configuration gives. With
``--socket`` the daemon answers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shim.frontends.cli import EXIT_OK, RuntimeFailure


def configure(parser: argparse.ArgumentParser) -> None:
    from shim.frontends.admit import add_node_options

    add_node_options(parser, state_help="the state directory holding the kubelet-format state files "
                                        "(default: an empty node)")


def node_state(node: Any) -> dict[str, Any]:
    """The ``podshim state`` document of a node (the daemon answers ``State`` with the same)."""
    from shim.frontends import render

    cpu = node.actors.cpu_manager
    memory = node.actors.memory_manager
    reserved = None if cpu.policy is None else cpu.policy.reserved_cpus
    return render.state_result(
        cpu.state, memory.state, reserved_cpus=reserved, cpu_policy=cpu.policy_name, memory_policy=memory.policy_name
    )


def run(args: argparse.Namespace) -> int:
    from shim.frontends import render

    if args.socket is not None:
        document = _remote(args.socket)
    else:
        from shim.frontends.admit import local_node

        with local_node(args, read_only=True, must_exist=True) as node:
            document = node_state(node)
    if args.output == "json" or "free" not in document:
        sys.stdout.write(render.dumps(document))
    else:
        sys.stdout.write(render.state_table(document))
    sys.stdout.flush()
    return EXIT_OK


def _remote(socket: str) -> dict[str, Any]:
    from shim.frontends.admit import client_module

    client = client_module()
    try:
        with client.Client(socket) as connection:
            answer = connection.state()
    except client.DaemonError as error:
        raise RuntimeFailure(str(error)) from None
    if not isinstance(answer, dict):
        raise RuntimeFailure(f"podshim daemon at {socket}: unexpected answer to State")
    return answer
