from __future__ import annotations

import sys
from pathlib import Path

# The frozen snapshots are built with the domain tests' factory.
_DOMAIN_TESTS = str(Path(__file__).parent.parent / "domain")
if _DOMAIN_TESTS not in sys.path:
    sys.path.insert(0, _DOMAIN_TESTS)
