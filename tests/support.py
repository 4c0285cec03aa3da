"""Helpers for tests that need root, real cgroups or runc.

``require(condition, reason)`` skips with the reason, except under
``PODSHIM_REQUIRE_INTEGRATION=1`` (CI), where a missing prerequisite fails the test instead.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_INTEGRATION = os.environ.get("PODSHIM_REQUIRE_INTEGRATION") == "1"


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if REQUIRE_INTEGRATION:
        pytest.fail(f"integration prerequisite missing: {reason}")
    pytest.skip(reason)


_SCRIPT_PROBE = """\
import os, sys
def _exit(code):  # the script leaves through os._exit (errors.exit_now): report instead
    raise SystemExit(code)
os._exit = _exit
before = set(sys.modules)
sys.argv = [{script!r}, *{argv!r}]
with open({script!r}) as file:
    code = compile(file.read(), {script!r}, "exec")
try:
    exec(code, {{"__name__": "__main__"}})
except SystemExit as done:
    code = done.code
loaded = sorted(m for m in set(sys.modules) - before
                if m.split(".")[0] in {packages!r} or m in {modules!r} or m.startswith({prefixes!r}))
print(code, loaded)
"""


def script_probe(script: str, argv: list[str], *, packages: tuple[str, ...], modules: tuple[str, ...] = ()) -> str:
    """Python code that runs ``script`` (the podshim-hook script) with ``argv`` in its own
    process as a runtime would, then prints its exit code and the sorted list of what it loaded
    from ``packages`` (top-level names) or ``modules`` (a module and its submodules); modules the
    interpreter had loaded before the script ran are not counted."""
    return _SCRIPT_PROBE.format(script=script, argv=argv, packages=packages, modules=modules,
                                prefixes=tuple(f"{name}." for name in modules))
