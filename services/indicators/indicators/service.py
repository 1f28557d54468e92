"""Indicators domain logic, by concern (one hop from here to each):

- ``rules``: an indicator's evaluation config, grace, unit ranges, period parsing, lookup by code;
- ``registry``: departments (local copy), indicators, descriptions, targets;
- ``observations``: the one write path, ``record_observations``, and which changes keep a revision;
  ``observation_store``: its SQL (typed rows, upserts, COPY, locks, revisions);
- ``status``: state after the series moved, overrides; ``publish``: the published status and events;
- ``formulas``: formula indicators; ``schedule``: the worker's scheduled work;
- ``queries``: reads for the API; ``derived311``: the 311 derivation.

This module names the functions callers use, so an import of ``indicators.service`` keeps working.
"""

from __future__ import annotations

from indicators.formulas import recompute_formula
from indicators.observations import ObsIn, RecordResult, keeps_revision, record_observations
from indicators.periods import local_date
from indicators.publish import effective_status, missing_period
from indicators.queries import series
from indicators.registry import (
    check_department,
    create_indicator,
    current_description,
    set_targets,
    update_indicator,
    upsert_department,
)
from indicators.rules import (
    UNIT_RANGE,
    eval_config,
    get_indicator,
    grace_days,
    period_cached,
    tz_of,
    validate_value,
)
from indicators.schedule import expire_overrides, flag_missing, status_counts
from indicators.status import active_overrides, clear_override, set_override

_period_cached = period_cached  # the older name, still used by the API

__all__ = [
    "UNIT_RANGE", "ObsIn", "RecordResult", "active_overrides", "check_department", "clear_override",
    "create_indicator", "current_description", "effective_status", "eval_config", "expire_overrides",
    "flag_missing", "get_indicator", "grace_days", "keeps_revision", "local_date", "missing_period",
    "period_cached", "record_observations", "recompute_formula", "series", "set_override", "set_targets",
    "status_counts", "tz_of", "update_indicator", "upsert_department", "validate_value",
]
