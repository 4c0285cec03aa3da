"""The ``podshim`` command line (DESIGN.md §4).

Each subcommand is a row of ``COMMANDS``: a name, a one-line help, and the module holding its
``configure(parser)`` and ``run(args) -> int``. Only the module of the command being run is
imported (``podshim hook`` must start fast), and such modules import their heavy dependencies
inside ``run``. Exit codes: 0 ok, 1 pod rejected, 2 bad usage or input (one line on stderr
naming the file, field and value), 3 runtime failure.
"""

from __future__ import annotations

import sys

from shim.frontends.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    RuntimeFailure,
    UsageError,
    fail,
    guarded,
)

# Neither typing, dataclasses nor argparse at import time: ``podshim hook`` comes through here
# on every container start (mypy treats a name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, NoReturn

    from shim.topology.model import Topology
    from shim.topology.sysfs import Discovery


class Command:
    """A subcommand: ``module`` is imported only when the command runs (or shows its help).
    A plain slotted class: a dataclass would load ``dataclasses`` (and ``inspect``) on every
    ``podshim`` start."""

    __slots__ = ("configure", "help", "module", "name", "run")

    def __init__(self, name: str, help: str, module: str, configure: str = "configure", run: str = "run") -> None:
        self.name = name
        self.help = help
        self.module = module
        self.configure = configure
        self.run = run

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Command):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {self.help!r}, {self.module!r}, {self.configure!r}, {self.run!r})"

    def _key(self) -> tuple[str, str, str, str, str]:
        return (self.name, self.help, self.module, self.configure, self.run)


COMMANDS: tuple[Command, ...] = (
    Command("topology", "show the machine topology (sockets, NUMA nodes, cores, caches, devices)",
            __name__, "configure_topology", "run_topology"),
    Command("admit", "admit pods: which CPUs and NUMA memory each container gets", "shim.frontends.admit"),
    Command("remove", "release what a pod or one of its containers holds", "shim.frontends.remove"),
    Command("state", "show assignments, pod bubbles and free pools", "shim.frontends.state_cmd"),
    Command("replay", "re-run a recorded trace (--check: fail on any difference)", "shim.frontends.replay_cmd"),
    Command("serve", "run the node daemon: admissions on a Unix socket, metrics, pod dir", "shim.frontends.server"),
    Command("hook", "OCI runtime hook (createRuntime | poststop): pin or release the container on stdin",
            "shim.frontends.hook", run="run_namespace"),
)


def _terminal_width() -> int:
    # shutil.get_terminal_size's rule (COLUMNS, then the terminal, then 80), without importing
    # shutil: argparse's HelpFormatter imports it for every argument added, and shutil loads
    # the compression modules, a few ms of every ``podshim hook``.
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


def _parser_class() -> type[argparse.ArgumentParser]:
    """The ArgumentParser subclass of every podshim parser (built on first use: defining it at
    import time would load argparse for ``podshim hook`` too)."""
    global _PARSER
    if _PARSER is not None:
        return _PARSER
    import argparse

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             _terminal_width() if width is None else width)

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{self.prog}: {message}")

    _PARSER = Parser
    return Parser


_PARSER: type[argparse.ArgumentParser] | None = None


def _selected(argv: Sequence[str]) -> str | None:
    # The top-level parser has only flags without values, so the command is the first word.
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its options (and its module loaded).
    When ``argv`` starts with a known command, the other commands' subparsers are not built at
    all (nothing can show them: their help lists only come with ``podshim --help``)."""
    from shim import __version__

    parser_class = _parser_class()
    parser = parser_class(prog="podshim", description="NUMA-aligned CPU and memory manager for pods.")
    parser.add_argument("--version", action="version", version=f"podshim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    chosen = _selected(argv)
    only = chosen if argv and argv[0] == chosen and any(c.name == chosen for c in COMMANDS) else None
    for command in COMMANDS:
        if only is not None and command.name != only:
            continue
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if command.name == chosen:
            module = sys.modules[__name__] if command.module == __name__ else _import(command.module)
            getattr(module, command.configure)(sub)
            sub.set_defaults(_run=getattr(module, command.run))
    return parser


def _import(name: str) -> Any:
    __import__(name)
    return sys.modules[name]


def main(argv: Sequence[str] | None = None, *, fast_hook: bool = True) -> int:
    """Run the command line; returns the exit code instead of exiting. ``podshim hook`` goes
    to :func:`shim.frontends.hook.main` first, which parses plain hook command lines without
    argparse (and hands the others back here with ``fast_hook=False``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if fast_hook and args_list[:1] == ["hook"]:
        from shim.frontends.hook import main as hook_main

        return hook_main(args_list[1:])
    return guarded(sys.stderr, _parse_and_run, args_list)


def _parse_and_run(args_list: list[str]) -> int:
    args = build_parser(args_list).parse_args(args_list)
    run = getattr(args, "_run", None)
    if run is None:
        names = ", ".join(command.name for command in COMMANDS)
        raise UsageError(f"a command is required ({names})")
    code: int = run(args)
    return code


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
    return machine_from(args.topology, args.sysfs_root)


def machine_from(topology: str | None, sysfs_root: str | None) -> tuple[Topology, Discovery | None]:
    """:func:`load_machine` for the two option values."""
    from shim.topology import TopologyError
    from shim.topology.jsonfile import load_topology, loads_topology
    from shim.topology.sysfs import discover_report

    try:
        if topology == "-":
            return loads_topology(sys.stdin.read(), source="<stdin>"), None
        if topology is not None:
            return load_topology(topology), None
    except TopologyError as error:
        raise UsageError(str(error)) from None
    try:
        discovery = discover_report(sysfs_root or "/")
    except TopologyError as error:
        if sysfs_root is None:
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


__all__ = [
    "COMMANDS",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "Command",
    "RuntimeFailure",
    "UsageError",
    "add_topology_source",
    "build_parser",
    "fail",
    "load_machine",
    "machine_from",
    "main",
]
