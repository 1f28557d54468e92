"""The write path's typed rows match their tables, and which changes keep a revision (no I/O)."""

from datetime import date
from types import SimpleNamespace

from indicators.derived311 import FACT_FIELDS
from indicators.models import RequestFact, observations
from indicators.observation_store import OBS_FIELDS, ObsRow
from indicators.observations import keeps_revision


def test_an_observation_row_has_the_table_columns_in_order():
    assert OBS_FIELDS == tuple(c.name for c in observations.c)
    row = ObsRow(*[None] * len(OBS_FIELDS))
    row.set_evaluation(("red", "yellow", 0.2, 80.0, 2, "why"))
    assert row.evaluation() == ("red", "yellow", 0.2, 80.0, 2, "why")
    assert (row.status, row.raw_status, row.miss, row.reference, row.streak, row.reason) == row.evaluation()


def test_a_request_fact_has_the_table_columns():
    assert set(FACT_FIELDS) == {c.name for c in RequestFact.__table__.c}
    assert FACT_FIELDS[0] == "service_request_id"  # the upsert's key, left out of its SET list


def test_which_changes_keep_a_revision():
    today = date(2026, 12, 7)
    staff = SimpleNamespace(derived_from=None)
    derived = SimpleNamespace(derived_from="311")
    assert keeps_revision(staff, date(2026, 12, 31), today)  # every replaced value people entered
    assert keeps_revision(staff, date(2026, 11, 30), today)
    assert not keeps_revision(derived, date(2026, 12, 31), today)  # the current period's running count
    assert keeps_revision(derived, date(2026, 11, 30), today)  # a figure of an ended period that moves
