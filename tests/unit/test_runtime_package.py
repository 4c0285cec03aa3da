"""``shim.runtime`` loads its submodules on first use, and its names mean the same whatever was
imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBES = {
    "bus only": (
        "import sys, shim.runtime.bus\n"
        "print(sorted(m for m in sys.modules if m.startswith('shim.runtime.')))\n",
        "['shim.runtime.bus']",
    ),
    "submodule first": (
        "from shim.runtime.replay import replay as f\n"
        "import shim.runtime\n"
        "from shim.runtime import replay\n"
        "print(replay is f and shim.runtime.replay is f and callable(replay))\n",
        "True",
    ),
    "package first": (
        "from shim.runtime import replay, Recorder\n"
        "import shim.runtime.replay, shim.runtime.recorder as rec\n"
        "print(shim.runtime.replay is replay, Recorder is rec.Recorder, type(rec).__name__)\n",
        "True True module",
    ),
    "unknown name": (
        "import shim.runtime\n"
        "try:\n    shim.runtime.nothing\nexcept AttributeError as e:\n    print(e)\n",
        "module 'shim.runtime' has no attribute 'nothing'",
    ),
}


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_runtime_package_names(probe: str) -> None:
    code, expected = PROBES[probe]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected, done.stderr
