"""Fixtures for the escalation tests; the harness lives in esc_helpers."""

from esc_helpers import clock, directory, harness, harness_down  # noqa: F401
