"""Exit codes and the two failures every command reports the same way (DESIGN.md §4).

Kept apart from :mod:`shim.frontends.cli` so that ``podshim-hook`` can report a failure exactly
as ``podshim`` does without loading argparse, which costs about one more interpreter start-up.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, TextIO, TypeVar

    T = TypeVar("T")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3


class UsageError(Exception):
    """Bad usage or input; reported as one line, exit 2."""


class RuntimeFailure(Exception):
    """The command could not do its work (not the user's input); reported as one line, exit 3."""


def fail(stream: TextIO, message: str) -> None:
    """Write ``message`` as one line prefixed with the program name (unless it names it already)."""
    line = " ".join(message.split())
    stream.write((line if line.startswith("podshim") else f"podshim: {line}") + "\n")


def guarded(stream: TextIO, command: Callable[[T], int], argument: T) -> int:
    """``command(argument)``'s exit code, with every failure turned into one line on ``stream``:
    UsageError → 2, RuntimeFailure → 3, a closed stdout → 0, anything else (a bug, or an
    environment nobody expected) → 3 and ``internal error`` rather than a traceback wall."""
    try:
        return command(argument)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    except UsageError as error:
        fail(stream, str(error))
        return EXIT_USAGE
    except RuntimeFailure as error:
        fail(stream, str(error))
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:
        fail(stream, f"internal error: {type(error).__name__}: {error}")
        return EXIT_FAILURE


def exit_now(code: int) -> NoReturn:
    """End a one-shot process (the OCI hook) with ``code``, skipping the interpreter's
    finalization (module teardown, a last collection): about 2 ms here, a fifth of the bare
    interpreter's start-up, on every container start and stop. Only for a process that has
    nothing left to tear down: its output is flushed here, its files are closed (the hook
    writes through ``with`` blocks and atomic renames) and its state lock is released by the
    kernel with the process. A stream that cannot be flushed takes the normal way out."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "RuntimeFailure", "UsageError", "exit_now", "fail",
    "guarded",
]
