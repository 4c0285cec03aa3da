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
