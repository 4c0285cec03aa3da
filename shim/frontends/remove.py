"""``podshim remove POD_UID [--container NAME]``: release what a pod or one container holds.

Locally (``--state-dir``) the node is rebuilt from the state files, the removal goes through the
actors and the files are rewritten; with ``--socket`` the daemon does it. As in the kubelet, a
pod-level pod's bubble returns to the node only with its last container, and removing something
that holds nothing is not an error (removals are idempotent).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shim.frontends.cli import EXIT_OK, RuntimeFailure, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    from shim.frontends.admit import add_node_options

    parser.add_argument("pod_uid", metavar="POD_UID", help="the uid of the pod")
    parser.add_argument("--container", metavar="NAME", help="remove only this container")
    add_node_options(parser, state_help="the state directory holding the kubelet-format state files")


def _holdings(node: Any, pod_uid: str) -> dict[str, Any]:
    # What the pod holds, in the shape of one pod of `podshim state --output json`.
    from shim.frontends import render

    document = render.state_result(
        node.cpu_state, node.memory_state, reserved_cpus=None, cpu_policy="", memory_policy=""
    )
    for pod in document["pods"]:
        if pod["uid"] == pod_uid:
            found: dict[str, Any] = pod
            return found
    return {}


def run(args: argparse.Namespace) -> int:
    from shim.frontends import render

    if args.socket is not None:
        result = _remove_remote(args)
    elif args.state_dir is None:
        raise UsageError("remove needs --state-dir DIR or --socket PATH")
    else:
        result = _remove_local(args)
    if args.output == "json":
        sys.stdout.write(render.dumps(result))
    else:
        sys.stdout.write(_describe(result))
    sys.stdout.flush()
    return EXIT_OK


def _remove_local(args: argparse.Namespace) -> dict[str, Any]:
    from shim.frontends.admit import local_node

    with local_node(args, must_exist=True) as node:
        before = _holdings(node, args.pod_uid)
        names = {c["name"] for c in before.get("containers", [])}
        held = bool(before) and (args.container is None or args.container in names)
        shared_before = node.cpu_state.default_cpuset
        if args.container is None:
            node.remove_pod(args.pod_uid)
        else:
            node.remove_container(args.pod_uid, args.container)
        after = _holdings(node, args.pod_uid)
        freed = node.cpu_state.default_cpuset - shared_before
    return {
        "pod_uid": args.pod_uid,
        "container": args.container,
        "held": held,
        "freed_cpus": str(freed),
        "remaining": after or None,
    }


def _remove_remote(args: argparse.Namespace) -> dict[str, Any]:
    from shim.frontends.admit import client_module

    client = client_module()
    try:
        with client.Client(args.socket) as connection:
            answer = connection.remove(args.pod_uid, args.container)
    except client.DaemonError as error:
        raise RuntimeFailure(str(error)) from None
    if isinstance(answer, dict):
        return answer
    return {"pod_uid": args.pod_uid, "container": args.container, "result": answer}


def _describe(result: dict[str, Any]) -> str:
    what = f"container {result['container']} of pod {result['pod_uid']}" if result.get("container") else (
        f"pod {result['pod_uid']}")
    if "held" not in result:  # the daemon's own answer
        return f"removed {what}\n"
    if not result["held"]:
        return f"nothing to remove: {what} holds nothing\n"
    lines = [f"removed {what}"]
    if result.get("freed_cpus"):
        lines.append(f"  cpus back in the node's shared pool: {result['freed_cpus']}")
    remaining = result.get("remaining")
    if remaining:
        bubble = remaining.get("pod") or {}
        left = ", ".join(c["name"] for c in remaining.get("containers", [])) or "none"
        lines.append(f"  the pod still holds its bubble (cpus {bubble.get('cpus') or '-'}); containers left: {left}")
    return "\n".join(lines) + "\n"
