"""The ``podshim`` command line (DESIGN.md §4).

Each subcommand is a row of ``COMMANDS``: a name, a one-line help, and the module holding its
``configure(parser)`` and ``run(args) -> int``. Only the module of the command being run is
imported (``podshim hook`` must start fast), and such modules import their heavy dependencies
inside ``run``. Exit codes: 0 ok, 1 pod rejected, 2 bad usage or input (one line on stderr
naming the file, field and value), 3 runtime failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from shim.topology.model import Topology
    from shim.topology.sysfs import Discovery

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3


class UsageError(Exception):
    """Bad usage or input; ``main`` prints the one-line message and exits 2."""


class RuntimeFailure(Exception):
    """The command could not do its work (not the user's input); ``main`` exits 3."""


@dataclass(frozen=True)
class Command:
    """A subcommand: ``module`` is imported only when the command runs (or shows its help)."""

    name: str
    help: str
    module: str
    configure: str = "configure"
    run: str = "run"


COMMANDS: tuple[Command, ...] = (
    Command("topology", "show the machine topology (sockets, NUMA nodes, cores, caches, devices)",
            __name__, "configure_topology", "run_topology"),
    Command("admit", "admit pods: which CPUs and NUMA memory each container gets", "shim.frontends.admit"),
    Command("remove", "release what a pod or one of its containers holds", "shim.frontends.remove"),
    Command("state", "show assignments, pod bubbles and free pools", "shim.frontends.state_cmd"),
    Command("replay", "re-run a recorded trace (--check: fail on any difference)", "shim.frontends.replay_cmd"),
    Command("serve", "run the node daemon: admissions on a Unix socket, metrics, pod dir", "shim.frontends.server"),
    Command("hook", "OCI runtime hook (createRuntime | poststop): pin or release the container on stdin",
            "shim.frontends.hook"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _selected(argv: Sequence[str]) -> str | None:
    # The top-level parser has only flags without values, so the command is the first word.
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its options (and its module loaded)."""
    from shim import __version__

    parser = _Parser(prog="podshim", description="NUMA-aligned CPU and memory manager for pods.")
    parser.add_argument("--version", action="version", version=f"podshim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = _selected(argv)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if command.name == chosen:
            module = importlib.import_module(command.module)
            getattr(module, command.configure)(sub)
            sub.set_defaults(_run=getattr(module, command.run))
    return parser


def _fail(stream: TextIO, message: str) -> None:
    # One line, whatever the exception text held; parser messages already name the program.
    line = " ".join(message.split())
    stream.write((line if line.startswith("podshim") else f"podshim: {line}") + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
        if run is None:
            names = ", ".join(command.name for command in COMMANDS)
            raise UsageError(f"a command is required ({names})")
        return run(args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    except UsageError as error:
        _fail(sys.stderr, str(error))
        return EXIT_USAGE
    except RuntimeFailure as error:
        _fail(sys.stderr, str(error))
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # a bug or an unexpected environment: never a traceback wall
        _fail(sys.stderr, f"internal error: {type(error).__name__}: {error}")
        return EXIT_FAILURE


# ---------------------------------------------------------------------------------------------
# podshim topology


def add_topology_source(parser: argparse.ArgumentParser) -> None:
    """``--topology FILE | --sysfs-root DIR`` (shared by the commands that need a machine)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--topology", metavar="FILE", help="topology JSON file ('-' = stdin)")
    source.add_argument("--sysfs-root", metavar="DIR", help="discover from a tree laid out like / (default: /)")


def load_machine(args: argparse.Namespace) -> tuple[Topology, Discovery | None]:
    """(Topology, sysfs Discovery or None) from ``--topology``/``--sysfs-root``; input problems
    become UsageError, a failure to read this machine's own /sys a RuntimeFailure."""
    from shim.topology import TopologyError
    from shim.topology.jsonfile import load_topology, loads_topology
    from shim.topology.sysfs import discover_report

    try:
        if args.topology == "-":
            return loads_topology(sys.stdin.read(), source="<stdin>"), None
        if args.topology is not None:
            return load_topology(args.topology), None
    except TopologyError as error:
        raise UsageError(str(error)) from None
    try:
        discovery = discover_report(args.sysfs_root or "/")
    except TopologyError as error:
        if args.sysfs_root is None:
            raise RuntimeFailure(str(error)) from None
        raise UsageError(str(error)) from None
    return discovery.topology, discovery


def configure_topology(parser: argparse.ArgumentParser) -> None:
    add_topology_source(parser)
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")


def run_topology(args: argparse.Namespace) -> int:
    from shim.topology.jsonfile import dumps_topology
    from shim.topology.summary import summarize

    topology, discovery = load_machine(args)
    text = dumps_topology(topology) if args.output == "json" else summarize(topology, discovery)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK
