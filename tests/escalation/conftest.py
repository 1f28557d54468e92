"""Fixtures for the escalation tests; the harness lives in esc_helpers (beside this file, on the
path through pyproject's pytest ``pythonpath``)."""

from esc_helpers import clock, directory, harness, harness_down  # noqa: F401
