"""Through the real broker: directory.changes -> local copy; indicator.breached -> consumer ->
ticket -> ticket.opened on escalation.tickets; the worker's scheduler -> ticket.escalated."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from esc_helpers import breach, esc_settings, ny, person

from citystat_common.bus import ensure_topics, make_producer
from citystat_common.db import create_engine
from citystat_common.demo import directory_rows
from citystat_common.events import TOPIC_DIRECTORY, TOPIC_INDICATORS, TOPIC_TICKETS
from citystat_common.testing import collect_events, eventually
from escalation.models import PLUMBING, SeniorTeamCopy, Ticket
from escalation.worker import build_worker

pytestmark = pytest.mark.integration


async def test_breach_through_the_broker_opens_and_escalates_a_ticket(db_factory, broker, directory, clock):
    settings = esc_settings(db_factory, kafka_bootstrap=broker.bootstrap, directory_url="http://directory",
                            scheduler_interval=0.2, notify_interval=0.2, gauge_interval=0.5, outbox_poll_interval=0.1)
    await ensure_topics(broker.bootstrap, settings.topic_partitions)
    indicator = f"bus-{uuid.uuid4().hex[:8]}"
    # the directory's own events, as its relay would publish them
    dir_engine = create_engine(directory.database_url)
    async with dir_engine.connect() as conn:
        ob = PLUMBING.outbox
        dir_events = (await conn.execute(sa.select(ob.c.key, ob.c.payload).order_by(ob.c.id))).all()
    await dir_engine.dispose()
    producer = make_producer(broker.bootstrap, False)
    await producer.start()
    try:
        for key, payload in dir_events:
            await producer.send_and_wait(TOPIC_DIRECTORY, payload, key=key.encode())
        event = breach(indicator=indicator, episode=f"{indicator}-ep", department="SANITATION", tag="spending",
                       magnitude=0.6)
        await producer.send_and_wait(TOPIC_INDICATORS, event.to_bytes(), key=indicator.encode())
    finally:
        await producer.stop()

    parts = build_worker(settings, directory_transport=directory.transport, clock=clock)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c(stop)) for c in parts.components()]
    try:
        events = await collect_events(
            broker.bootstrap, TOPIC_TICKETS, timeout=45,
            until=lambda evs: any(e.type == "escalation.ticket.opened" and e.data["indicator_id"] == indicator for e in evs),
        )
        opened = next(e for e in events if e.type == "escalation.ticket.opened" and e.data["indicator_id"] == indicator)
        assert opened.data["assignee"]["name"] == person("SANITATION", "budget_partner")
        assert opened.data["assignee_role"] == "budget_partner" and opened.data["severity"] == 1
        ticket_id = opened.subject

        # The demo city's departments: directory.changes on the session's broker may also hold
        # departments other tests published (intake311's VECTOR), which this copy takes in too.
        demo = {r["department_code"] for r in directory_rows()}

        async def copy_complete() -> bool:
            async with parts.engine.connect() as conn:
                n = (await conn.execute(sa.select(sa.func.count()).select_from(SeniorTeamCopy)
                                        .where(SeniorTeamCopy.department_code.in_(demo),
                                               SeniorTeamCopy.roles.is_not(None)))).scalar_one()
            return n == len(demo) == 12

        await eventually(copy_complete, timeout=30)
        # nobody acknowledges: at 14:00 the worker's own scheduler moves it up the chain
        clock.set(ny(2026, 11, 23, 14, 0))
        events = await collect_events(
            broker.bootstrap, TOPIC_TICKETS, timeout=45,
            until=lambda evs: any(e.type == "escalation.ticket.escalated" and e.subject == ticket_id for e in evs),
        )
        escalated = next(e for e in events if e.type == "escalation.ticket.escalated" and e.subject == ticket_id)
        assert escalated.data["to_level"] == 1 and escalated.data["level_role"] == "department_head"
        assert person("SANITATION", "department_head") in [p["name"] for p in escalated.data["notified"]]
        async with parts.engine.connect() as conn:
            [(level, count)] = (await conn.execute(
                sa.select(Ticket.level, sa.func.count()).where(Ticket.indicator_id == indicator).group_by(Ticket.level)
            )).all()
        assert (level, count) == (1, 1)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=20)
        for t in tasks:
            t.cancel()
        await parts.engine.dispose()
