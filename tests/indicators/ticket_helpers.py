"""Ticket snapshots and senior-team events delivered through the indicators consumer (the real
handlers, inbox and transaction), for the "who is on it" tests."""

import uuid
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from ind_helpers import deps_of

from citystat_common.events import Envelope, PersonRef, SeniorTeamChanged, TicketUpdated, make_event
from citystat_common.runtime import make_consumer
from indicators.handlers import GROUP_ID, make_handlers
from indicators.models import PLUMBING

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


class Feed:
    def __init__(self, app):
        settings = app.state.ctx.settings
        self.runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID,
                                    topics=["escalation.tickets", "directory.changes"], handlers=make_handlers(deps_of(settings)))
        self.offset = 0

    async def deliver(self, env: Envelope, topic: str = "escalation.tickets") -> str:
        raw = env.to_bytes()
        self.offset += 1
        rec = ConsumerRecord(topic, 0, self.offset, 0, 0, env.subject.encode(), raw, None, 0, len(raw), [])
        return await self.runner.process(rec)


def snap(ticket_id, indicator_id, *, version, status="open", holder="Carmen Villanueva", level=0,
         role="stat_partner", action=None, source="threshold", at=T0):
    return make_event(TicketUpdated(
        ticket_id=ticket_id, department_code="STREETS", indicator_id=indicator_id, source=source,
        title="Potholes repaired within 3 days is red", status=status, level=level, level_role=role,
        holder=PersonRef(person_id="p-1", name=holder, email="holder@city.example.gov") if holder else None,
        holder_role="stat_partner", last_action=action, last_action_at=at if action else None, opened_at=T0,
        changed_at=at, version=version), subject=ticket_id)


def team(dept, cluster, deputy):
    return SeniorTeamChanged(
        department_id=str(uuid.uuid4()), department_code=dept, department_name=dept.title(), cluster_code=cluster,
        roles={}, deputy_mayor=PersonRef(person_id=str(uuid.uuid4()), name=deputy, title="Deputy Mayor"))
