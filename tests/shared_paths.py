"""Where the shared specs, conformance cases and sysfs fixtures are (``../shared`` by default)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PODSHIM_SHARED", REPO.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
SYSFS_FIXTURES = SHARED / "fixtures" / "sysfs"


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def case_list(path: Path) -> list[dict[str, Any]]:
    """The cases of a conformance file, whether it is a list or ``{"cases": [...]}``."""
    data = load_json(path)
    if isinstance(data, dict):
        cases: list[dict[str, Any]] = data.get("cases", [])
        return cases
    return list(data)
