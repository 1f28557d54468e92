"""A ticket's life by staff hands: opening (routed like a breach), acknowledging, working,
resolving, closing, reopening, severity and assignee changes, notes. Which move is allowed from
which status is ``lifecycle.TRANSITIONS``; the SQL is in ``store``. Functions never commit;
every one that depends on time takes ``now`` (tests drive a controllable clock)."""

from __future__ import annotations

from datetime import datetime

from citystat_common.errors import Conflict, Invalid
from citystat_common.events import IndicatorBreached, TicketAcknowledged, TicketOpened, TicketResolved
from citystat_common.uow import UnitOfWork
from escalation import links, metrics, notices, references, schemas, store, ticket_feed
from escalation.authors import SYSTEM, Author
from escalation.deps import Deps
from escalation.lifecycle import next_status
from escalation.models import Ticket, TicketEpisode, TimelineEntry
from escalation.policies import policy_for, policy_of, schedule
from escalation.policy import add_delay, delay_for, level_spec
from escalation.routing import function_of, route
from escalation.ticket_people import assignee_of, person_ref
from escalation.timeline import describe_miss, note


async def open_ticket(
    uow: UnitOfWork, deps: Deps, *, now: datetime, actor: Author, department_code: str, title: str, source: str,
    severity: int, function_tag: str | None, reason: str | None = None, description: str | None = None,
    breach: IndicatorBreached | None = None, indicator_id: str | None = None, indicator_code: str | None = None,
) -> Ticket:
    routing = await route(uow, deps.directory, department_code=department_code, function_tag=function_tag)
    policy = await policy_for(uow, department_code)
    a = routing.assignee
    t = Ticket(
        department_code=department_code, department_name=routing.department_name, cluster_code=routing.cluster_code,
        indicator_id=breach.indicator_id if breach else indicator_id,
        indicator_code=breach.indicator_code if breach else indicator_code,
        episode_id=breach.episode_id if breach else None, open_episode=breach.episode_id if breach else None,
        title=title, description=description, reason=reason, severity=severity, status="open", source=source,
        function_tag=function_of(function_tag), critical=breach.critical if breach else False,
        magnitude=breach.magnitude if breach else None, basis=breach.basis if breach else None,
        value=breach.value if breach else None, target=breach.target if breach else None,
        period=breach.period if breach else None, breach_count=1 if breach else 0,
        assignee_id=a["person_id"] if a else None, assignee_name=a["name"] if a else None,
        assignee_title=a.get("title") if a else None, assignee_role=routing.assignee_role,
        routing_source=routing.source, routing_note=routing.note, chain=routing.chain, policy_id=policy.id,
        level=routing.level, level_entered_at=now, level_repeats=0, opened_by=actor.label[:100], opened_at=now, updated_at=now,
    )
    uow.session.add(t)
    schedule(deps, t, policy, start=now)
    spec0 = level_spec(policy.levels, 0)
    d0 = delay_for(spec0, severity) if spec0 else None
    t.ack_due_at = add_delay(deps.calendar, now, d0, deps.settings.delay_scale) if d0 else None
    await uow.flush()
    if breach is not None:
        uow.session.add(TicketEpisode(ticket_id=t.id, episode_id=breach.episode_id))
    what = f"breach of {t.indicator_code} ({describe_miss(breach)})" if breach else f"manual flag: {reason}"
    note(uow, t, actor=actor, kind="opened", text=f"Opened from a {what}; severity {severity}", now=now,
         source=source, severity=severity)
    who = f"{a['name']} ({routing.assignee_role})" if a else "nobody (unassigned)"
    note(uow, t, actor=SYSTEM, kind="routed", now=now, text=f"Assigned to {who} via {routing.source}"
         + (f"; {routing.note}" if routing.note else ""), routing_source=routing.source, assignee=a,
         responsible_role=routing.assignee_role, chain=routing.chain)
    await notices.notify(uow, deps, t=t, kind="opened", level=t.level, person=a, role=routing.assignee_role, now=now,
                         text=f"New {'flag' if source == 'manual' else 'breach'} for {department_code}: {title}",
                         key=f"opened:{t.id}:{notices.person_key(a)}")
    uow.emit(
        TicketOpened(
            ticket_id=t.id, department_code=department_code, indicator_id=t.indicator_id, episode_id=t.episode_id,
            title=title, severity=severity, source=source, level=t.level, assignee=person_ref(a),
            assignee_role=routing.assignee_role, routing_note=routing.note,
        ),
        subject=t.id,
    )
    await ticket_feed.publish(uow, t, now=now)
    metrics.TICKETS_OPENED.labels(department_code, source).inc()
    return t


async def acknowledge(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    await _acknowledge(uow, deps, t=t, actor=actor, now=now, text=text)
    return t


async def _acknowledge(uow: UnitOfWork, deps: Deps, *, t: Ticket, actor: Author, now: datetime, text: str | None) -> None:
    status = next_status(t.status, "acknowledge")
    first = not await store.ever_acknowledged(uow, t.id)
    t.status, t.acknowledged_at, t.acknowledged_by, t.updated_at = status, now, actor.label[:100], now
    policy = await policy_of(uow, t)
    t.ack_expires_at = (
        add_delay(deps.calendar, now, policy.ack_timeout, deps.settings.delay_scale) if policy.ack_timeout else None
    )
    spec = level_spec(policy.levels, t.level)
    if spec and spec["condition"] == "not_acknowledged":
        t.next_escalation_at = None
    note(uow, t, actor=actor, kind="acknowledged", now=now, text="Acknowledged" + (f": {text}" if text else ""),
         ack_expires_at=t.ack_expires_at.isoformat() if t.ack_expires_at else None)
    uow.emit(TicketAcknowledged(ticket_id=t.id, department_code=t.department_code, by=actor.label, at=now), subject=t.id)
    await ticket_feed.publish(uow, t, now=now)
    if first:
        metrics.TIME_TO_ACK.labels(t.department_code).observe(max(0.0, (now - t.opened_at).total_seconds()))


async def start_work(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    status = next_status(t.status, "start work on")
    if t.status == "open":
        await _acknowledge(uow, deps, t=t, actor=actor, now=now, text="implicitly, by starting work")
    t.status, t.in_progress_at, t.updated_at, t.ack_expires_at = status, now, now, None
    policy = await policy_of(uow, t)
    spec = level_spec(policy.levels, t.level)
    if spec is not None and spec["condition"] == "not_acknowledged":
        schedule(deps, t, policy, start=now)  # work under way still has a resolution clock
    note(uow, t, actor=actor, kind="in_progress", now=now, text="Work in progress" + (f": {text}" if text else ""))
    await ticket_feed.publish(uow, t, now=now)
    return t


async def resolve(
    uow: UnitOfWork, deps: Deps, *, ticket: Ticket, actor: Author, reason: str, now: datetime, text: str | None = None,
    duplicate_of: str | None = None,
) -> Ticket:
    t = ticket
    status = next_status(t.status, "resolve")
    if reason == "duplicate":
        if not duplicate_of:
            raise Invalid("reason duplicate needs duplicate_of: the ticket that is kept", field="duplicate_of")
        if duplicate_of == t.id:
            raise Invalid("a ticket cannot duplicate itself", field="duplicate_of")
        await store.referenced_ticket(uow, duplicate_of, field="duplicate_of")
        await links.link(uow, t, other_id=duplicate_of, kind="duplicates", actor=actor, now=now)
    t.status, t.resolved_at, t.resolved_by, t.resolution_reason = status, now, actor.label[:100], reason
    t.open_episode, t.next_escalation_at, t.ack_expires_at, t.review_pending, t.updated_at = None, None, None, False, now
    note(uow, t, actor=actor, kind="resolved", now=now, text=f"Resolved: {reason}" + (f" ({text})" if text else ""),
         reason=reason)
    uow.emit(TicketResolved(ticket_id=t.id, department_code=t.department_code, reason=reason, by=actor.label, at=now),  # type: ignore[arg-type]
             subject=t.id)
    await ticket_feed.publish(uow, t, now=now)
    return t


async def close(uow: UnitOfWork, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    t.status, t.closed_at, t.updated_at = next_status(t.status, "close"), now, now
    note(uow, t, actor=actor, kind="closed", now=now, text="Closed" + (f": {text}" if text else ""))
    await ticket_feed.publish(uow, t, now=now)
    return t


async def reopen(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    status = next_status(t.status, "reopen")
    if t.episode_id:
        other = await store.ticket_open_for_episode(uow, t.episode_id)
        if other:
            raise Conflict(f"ticket {other} is already open for this breach episode", field="status")
        t.open_episode = t.episode_id
    t.status, t.resolved_at, t.resolution_reason, t.acknowledged_at = status, None, None, None
    t.level_entered_at, t.level_repeats, t.updated_at = now, 0, now
    schedule(deps, t, await policy_of(uow, t), start=now)
    note(uow, t, actor=actor, kind="reopened", now=now, text=f"Reopened: {text}")
    await ticket_feed.publish(uow, t, now=now)
    return t


async def change_severity(
    uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, severity: int, reason: str, now: datetime
) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    next_status(t.status, "change the severity of")
    if severity == t.severity:
        raise Conflict(f"the severity is already {severity}", field="severity")
    old, t.severity, t.updated_at = t.severity, severity, now
    if t.next_escalation_at is not None:
        schedule(deps, t, await policy_of(uow, t), start=t.level_entered_at)
    note(uow, t, actor=actor, kind="severity_changed", now=now, text=f"Severity {old} -> {severity}: {reason}",
         old=old, new=severity, reason=reason)
    return t


async def add_note(uow: UnitOfWork, *, ticket_id: str, actor: Author, text: str, now: datetime) -> TimelineEntry:
    t = await store.get_ticket(uow, ticket_id)
    entry = TimelineEntry(ticket_id=t.id, at=now, actor=actor.label[:100], kind="note", text=text, data={},
                          author=actor.as_dict())
    uow.session.add(entry)
    t.updated_at = now
    await uow.flush()
    return entry


async def assign(
    uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, data: schemas.Assign, now: datetime
) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    next_status(t.status, "reassign")
    old = assignee_of(t)
    # the directory's record, not the caller's spelling: a made-up person is refused
    p = await references.known_person(uow, deps, person_id=data.assignee.person_id)
    if old and old["person_id"] == p.person_id and (data.role or t.assignee_role) == t.assignee_role:
        raise Conflict(f"the ticket is already assigned to {p.name}", field="assignee.person_id")
    t.assignee_id, t.assignee_name, t.assignee_title = p.person_id, p.name, p.title
    t.assignee_role, t.updated_at = data.role or t.assignee_role, now
    note(uow, t, actor=actor, kind="reassigned", now=now,
         text=f"Reassigned from {old['name'] if old else 'nobody'} to {p.name}: {data.reason}",
         old=old, new={"person_id": p.person_id, "name": p.name, "title": p.title}, reason=data.reason)
    new = {"person_id": p.person_id, "name": p.name, "title": p.title}
    await notices.notify(uow, deps, t=t, kind="assigned", level=t.level, person=new, role=t.assignee_role, now=now,
                         text=f"{actor.label} assigned this ticket to you: {data.reason}",
                         key=f"assigned:{t.id}:{p.person_id}:{now.isoformat()}", cc=[old] if old else None)
    await ticket_feed.publish(uow, t, now=now)
    return t
