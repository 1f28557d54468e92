"""The ticket lifecycle as one table: from which status a staff (or scheduler) action is allowed
and the status it leads to. Anything not in the table is refused with a 409 naming the status.
Pure: no database, no clock; the actions that apply it live in ``tickets``, ``mutes`` and
``escalations``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from citystat_common.errors import Conflict
from escalation.models import OPEN_STATUSES

# The verbs read in the refusal: "cannot close a ticket that is open".
Verb = Literal[
    "acknowledge", "start work on", "resolve", "close", "reopen", "change the severity of", "reassign", "mute",
    "let the acknowledgement lapse",
]

TRANSITIONS: Mapping[tuple[str, Verb], str] = {
    ("open", "acknowledge"): "acknowledged",
    ("open", "start work on"): "in_progress",  # acknowledged implicitly on the way
    ("acknowledged", "start work on"): "in_progress",
    # the scheduler: acknowledged, but no progress before the acknowledgement expired
    ("acknowledged", "let the acknowledgement lapse"): "open",
    **{(s, "resolve"): "resolved" for s in OPEN_STATUSES},
    ("resolved", "close"): "closed",
    ("resolved", "reopen"): "open",
    # changes to an open ticket that keep its status
    **{(s, v): s for s in OPEN_STATUSES for v in ("change the severity of", "reassign", "mute")},
}


def next_status(status: str, verb: Verb) -> str:
    """The status ``verb`` leads to from ``status``; a ``Conflict`` (409) when the table has no such move."""
    try:
        return TRANSITIONS[(status, verb)]
    except KeyError:
        raise Conflict(f"cannot {verb} a ticket that is {status}", field="status") from None
