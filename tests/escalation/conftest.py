"""Fixtures for the escalation tests; the harness lives in esc_helpers (beside this file)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from esc_helpers import clock, directory, harness, harness_down  # noqa: E402, F401
