"""The ticket lifecycle table on its own (no database): every status x action, allowed or a 409."""

from __future__ import annotations

import typing

import pytest

from citystat_common.errors import Conflict
from escalation.lifecycle import TRANSITIONS, Verb, next_status
from escalation.models import OPEN_STATUSES, STATUSES

VERBS: tuple[str, ...] = typing.get_args(Verb)

# What staff may do, written out by hand from the rules the API documents.
EXPECTED = {
    ("open", "acknowledge"): "acknowledged",
    ("open", "start work on"): "in_progress",
    ("acknowledged", "start work on"): "in_progress",
    ("acknowledged", "let the acknowledgement lapse"): "open",
    ("open", "resolve"): "resolved",
    ("acknowledged", "resolve"): "resolved",
    ("in_progress", "resolve"): "resolved",
    ("resolved", "close"): "closed",
    ("resolved", "reopen"): "open",
    **{(s, v): s for s in OPEN_STATUSES for v in ("change the severity of", "reassign", "mute")},
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("verb", VERBS)
def test_every_status_and_action(status: str, verb: Verb) -> None:
    if (status, verb) in EXPECTED:
        assert next_status(status, verb) == EXPECTED[(status, verb)]
    else:
        with pytest.raises(Conflict) as refused:
            next_status(status, verb)
        assert refused.value.detail == f"cannot {verb} a ticket that is {status}"
        assert refused.value.errors == [{"field": "status", "message": refused.value.detail}]


def test_the_table_holds_only_known_statuses_and_verbs() -> None:
    assert set(TRANSITIONS) == set(EXPECTED)
    for (status, verb), to in TRANSITIONS.items():
        assert status in STATUSES and to in STATUSES and verb in VERBS


def test_closed_is_final() -> None:
    assert not [v for (s, v) in TRANSITIONS if s == "closed"]
