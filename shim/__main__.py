"""``python -m shim``: the podshim command line."""

from __future__ import annotations

import sys

from shim.frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
