"""The ticket's phrase on a dashboard tile (unit: no I/O): the holder's own role is named when it is
not the role the level aims at, so a fallback holder is never read as holding the vacant role."""

from __future__ import annotations

from indicators.models import TicketCopy
from indicators.ticket_copy import ticket_words


def _ticket(**kw) -> TicketCopy:
    base = dict(ticket_id="T1", indicator_id="I1", department_code="NYPD", source="threshold", status="open",
                level=0, level_role="customer_service_officer", holder_name="Rita Okafor",
                holder_role="customer_service_officer", last_action=None, last_action_at=None)
    return TicketCopy(**{**base, **kw})


def test_the_holder_of_the_levels_role_is_named_without_a_role():
    assert ticket_words(_ticket())[1:3] == ["held by Rita Okafor", "level 0 (customer service officer)"]


def test_a_holder_standing_in_for_a_vacant_role_is_named_with_their_own_role():
    words = ticket_words(_ticket(holder_role="department_head"))
    assert words[1:3] == ["held by Rita Okafor (department head)", "level 0 (customer service officer)"]


def test_nobody_holds_it():
    assert ticket_words(_ticket(holder_name=None, holder_role=None))[1] == "nobody holds it yet"
