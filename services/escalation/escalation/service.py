"""Escalation domain logic. Keyword-only functions taking a ``UnitOfWork``; they never commit.
Every function that depends on time takes ``now``: tests drive a controllable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from citystat_common.calendar import BusinessCalendar
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import (
    DepartmentUpserted,
    IndicatorBreached,
    IndicatorStatusData,
    PersonRef,
    PersonUpserted,
    SeniorTeamChanged,
    TicketAcknowledged,
    TicketEscalated,
    TicketOpened,
    TicketPromoted,
    TicketResolved,
)
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation import metrics, notices, references, schemas, ticket_feed
from escalation.authors import INDICATORS, SYSTEM, Author
from escalation.config import Settings
from escalation.limits import check_due, check_mute_until
from escalation.models import (
    LEVEL_ROLES,
    OPEN_STATUSES,
    Action,
    Escalation,
    Milestone,
    Mute,
    PersonCopy,
    Policy,
    Project,
    SeniorTeamCopy,
    Ticket,
    TicketEpisode,
    TicketLink,
    TimelineEntry,
)
from escalation.policy import add_delay, default_policy, delay_for, level_spec, next_level, resolution_delay
from escalation.routing import DirectoryClient, current_chain, function_of, route
from escalation.ticket_feed import level_role

log = get_logger(__name__)
__all__ = ["INDICATORS", "SYSTEM", "Author", "level_role"]  # re-exported for episodes, the API and pages


@dataclass
class Deps:
    """What the domain needs besides the database: settings, the calendar, the directory client."""

    settings: Settings
    calendar: BusinessCalendar
    directory: DirectoryClient | None = None

    @classmethod
    def build(cls, settings: Settings, directory: DirectoryClient | None = None) -> Deps:
        return cls(settings=settings, calendar=BusinessCalendar(timezone=settings.city_timezone), directory=directory)

    def channels(self) -> list[str]:
        chans = [c for c in self.settings.notifiers if c != "email"]  # email: per recipient (notices.notify)
        if self.settings.webhook_url and "webhook" not in chans:
            chans.append("webhook")
        return chans


# --- helpers ---------------------------------------------------------------------------------


def note(uow: UnitOfWork, ticket: Ticket, *, actor: Author, kind: str, text: str, now: datetime, **data: Any) -> None:
    uow.session.add(TimelineEntry(ticket_id=ticket.id, at=now, actor=actor.label[:100], kind=kind, text=text, data=data,
                                  author=actor.as_dict()))


def _person(d: dict[str, Any] | None) -> PersonRef | None:
    return PersonRef(person_id=d["person_id"], name=d["name"], title=d.get("title")) if d else None


def assignee_of(t: Ticket) -> dict[str, Any] | None:
    return {"person_id": t.assignee_id, "name": t.assignee_name, "title": t.assignee_title} if t.assignee_id else None


async def changed(uow: UnitOfWork, t: Ticket, *, now: datetime) -> None:
    """Publish the ticket's snapshot (status, holder, level, last action): see ticket_feed."""
    await ticket_feed.publish(uow, t, now=now)


def ticket_read(t: Ticket, now: datetime) -> schemas.TicketRead:
    end = t.resolved_at or t.closed_at or now
    a = assignee_of(t)
    return schemas.TicketRead(
        id=t.id, department_code=t.department_code, department_name=t.department_name, cluster_code=t.cluster_code,
        indicator_id=t.indicator_id, indicator_code=t.indicator_code, episode_id=t.episode_id, title=t.title,
        description=t.description, reason=t.reason, severity=t.severity, status=t.status, source=t.source,
        function_tag=t.function_tag, critical=t.critical, magnitude=t.magnitude, basis=t.basis, value=t.value,
        target=t.target, period=t.period, breach_count=t.breach_count,
        assignee=schemas.PersonOut(**a) if a else None, assignee_role=t.assignee_role,
        routing_source=t.routing_source, routing_note=t.routing_note, level=t.level, level_role=level_role(t),
        next_escalation_at=t.next_escalation_at, ack_expires_at=t.ack_expires_at, muted_until=t.muted_until,
        mute_reason=t.mute_reason, review_pending=t.review_pending, resolution_reason=t.resolution_reason,
        project_id=t.project_id, opened_by=t.opened_by, opened_at=t.opened_at, acknowledged_at=t.acknowledged_at,
        in_progress_at=t.in_progress_at, resolved_at=t.resolved_at, closed_at=t.closed_at,
        age_hours=round(max(0.0, (end - t.opened_at).total_seconds() / 3600), 2),
    )


async def get_ticket(uow: UnitOfWork, ticket_id: str, *, lock: bool = False) -> Ticket:
    stmt = sa.select(Ticket).where(Ticket.id == ticket_id)
    if lock and uow.dialect == "postgresql":
        stmt = stmt.with_for_update()
    t = (await uow.session.execute(stmt)).scalar_one_or_none()
    if t is None:
        raise NotFound(f"no ticket {ticket_id}", field="ticket_id")
    return t


async def referenced_ticket(uow: UnitOfWork, ticket_id: str, *, field: str) -> Ticket:
    """A ticket named in a body: unknown is the caller's 422 (naming the field), not a 404 of the URL."""
    t = (await uow.session.execute(sa.select(Ticket).where(Ticket.id == ticket_id))).scalar_one_or_none()
    if t is None:
        raise Invalid(f"no ticket {ticket_id}", field=field)
    return t


# --- policies --------------------------------------------------------------------------------


async def ensure_default_policy(uow: UnitOfWork) -> Policy:
    p = (await uow.session.execute(sa.select(Policy).where(Policy.is_default.is_(True)))).scalars().first()
    if p is None:
        p = (await uow.session.execute(sa.select(Policy).where(Policy.name == "default"))).scalar_one_or_none()
        if p is None:
            try:
                async with uow.session.begin_nested():  # the api and the worker may both seed it at start
                    p = Policy(**default_policy())
                    uow.session.add(p)
                    await uow.flush()
            except IntegrityError:
                p = (await uow.session.execute(sa.select(Policy).where(Policy.name == "default"))).scalar_one()
        else:
            p.is_default = True
    return p


async def policy_for(uow: UnitOfWork, department_code: str) -> Policy:
    rows = (await uow.session.execute(sa.select(Policy).order_by(Policy.name))).scalars().all()
    for p in rows:
        if department_code in (p.departments or []):
            return p
    return next((p for p in rows if p.is_default), None) or await ensure_default_policy(uow)


async def put_policy(uow: UnitOfWork, deps: Deps, *, name: str, data: schemas.PolicyIn) -> tuple[Policy, bool]:
    doc = data.model_dump(mode="json")
    others = (await uow.session.execute(sa.select(Policy).where(Policy.name != name))).scalars().all()
    for i, code in enumerate(data.departments):
        await references.known_department(uow, deps, code, field=f"departments.{i}")
        # one policy per department: with two, which one applied would depend on their names
        claimed = next((o.name for o in others if code in (o.departments or [])), None)
        if claimed:
            raise Conflict(f"department {code} already has policy {claimed!r}", field=f"departments.{i}")
    p = (await uow.session.execute(sa.select(Policy).where(Policy.name == name))).scalar_one_or_none()
    created = p is None
    if p is None:
        p = Policy(name=name, **doc)
        uow.session.add(p)
    else:
        for k, v in doc.items():
            setattr(p, k, v)
    if data.is_default:
        await uow.session.execute(sa.update(Policy).where(Policy.name != name).values(is_default=False))
    await uow.flush()
    return p, created


async def _policy_of(uow: UnitOfWork, t: Ticket) -> Policy:
    p = await uow.session.get(Policy, t.policy_id) if t.policy_id else None
    return p or await policy_for(uow, t.department_code)


def schedule(deps: Deps, t: Ticket, policy: Policy, *, start: datetime) -> None:
    """Set the ticket's next escalation time for its current level, counted from ``start``."""
    spec = level_spec(policy.levels, t.level)
    if spec is None or t.status not in OPEN_STATUSES or t.review_pending:
        t.next_escalation_at = None
        return
    if spec["condition"] == "not_acknowledged" and t.status != "open":
        # acknowledged: the acknowledgement timeout returns it to open; in progress: the resolution clock
        delay = resolution_delay(policy.levels, t.level, t.severity) if t.status == "in_progress" else None
        begun = t.in_progress_at or start
        t.next_escalation_at = add_delay(deps.calendar, begun, delay, deps.settings.delay_scale) if delay else None
        return
    delay = delay_for(spec, t.severity)
    t.next_escalation_at = add_delay(deps.calendar, start, delay, deps.settings.delay_scale) if delay else None


# --- opening ---------------------------------------------------------------------------------


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
    what = f"breach of {t.indicator_code} ({_miss(breach)})" if breach else f"manual flag: {reason}"
    note(uow, t, actor=actor, kind="opened", text=f"Opened from a {what}; severity {severity}", now=now,
         source=source, severity=severity)
    who = f"{a['name']} ({routing.assignee_role})" if a else "nobody (unassigned)"
    note(uow, t, actor=SYSTEM, kind="routed", now=now, text=f"Assigned to {who} via {routing.source}"
         + (f"; {routing.note}" if routing.note else ""), routing_source=routing.source, assignee=a,
         responsible_role=routing.assignee_role, chain=routing.chain)
    await notices.notify(uow, deps, t, kind="opened", level=t.level, person=a, role=routing.assignee_role, now=now,
                         text=f"New {'flag' if source == 'manual' else 'breach'} for {department_code}: {title}",
                         key=f"opened:{t.id}:{notices.person_key(a)}")
    uow.emit(
        TicketOpened(
            ticket_id=t.id, department_code=department_code, indicator_id=t.indicator_id, episode_id=t.episode_id,
            title=title, severity=severity, source=source, level=t.level, assignee=_person(a),  # type: ignore[arg-type]
            assignee_role=routing.assignee_role, routing_note=routing.note,
        ),
        subject=t.id,
    )
    await changed(uow, t, now=now)
    metrics.TICKETS_OPENED.labels(department_code, source).inc()
    return t


def _miss(b: IndicatorStatusData | None) -> str:
    if b is None:
        return ""
    parts = [f"value {b.value:g}" if b.value is not None else "no value"]
    if b.target is not None:
        parts.append(f"target {b.target:g}")
    if b.magnitude is not None:
        parts.append(f"{b.magnitude:.0%} worse vs {b.basis}")
    parts.append(f"period {b.period}")
    return ", ".join(parts)


# --- staff actions ---------------------------------------------------------------------------


def _require(t: Ticket, allowed: tuple[str, ...], action: str) -> None:
    if t.status not in allowed:
        raise Conflict(f"cannot {action} a ticket that is {t.status}", field="status")


async def acknowledge(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, ("open",), "acknowledge")
    await _acknowledge(uow, deps, t, actor=actor, now=now, text=text)
    return t


async def _acknowledge(uow: UnitOfWork, deps: Deps, t: Ticket, *, actor: Author, now: datetime, text: str | None) -> None:
    first = not (await uow.session.execute(
        sa.select(TimelineEntry.id).where(TimelineEntry.ticket_id == t.id, TimelineEntry.kind == "acknowledged").limit(1)
    )).first()
    t.status, t.acknowledged_at, t.acknowledged_by, t.updated_at = "acknowledged", now, actor.label[:100], now
    policy = await _policy_of(uow, t)
    t.ack_expires_at = (
        add_delay(deps.calendar, now, policy.ack_timeout, deps.settings.delay_scale) if policy.ack_timeout else None
    )
    spec = level_spec(policy.levels, t.level)
    if spec and spec["condition"] == "not_acknowledged":
        t.next_escalation_at = None
    note(uow, t, actor=actor, kind="acknowledged", now=now, text="Acknowledged" + (f": {text}" if text else ""),
         ack_expires_at=t.ack_expires_at.isoformat() if t.ack_expires_at else None)
    uow.emit(TicketAcknowledged(ticket_id=t.id, department_code=t.department_code, by=actor.label, at=now), subject=t.id)
    await changed(uow, t, now=now)
    if first:
        metrics.TIME_TO_ACK.labels(t.department_code).observe(max(0.0, (now - t.opened_at).total_seconds()))


async def start_work(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, ("open", "acknowledged"), "start work on")
    if t.status == "open":
        await _acknowledge(uow, deps, t, actor=actor, now=now, text="implicitly, by starting work")
    t.status, t.in_progress_at, t.updated_at, t.ack_expires_at = "in_progress", now, now, None
    policy = await _policy_of(uow, t)
    spec = level_spec(policy.levels, t.level)
    if spec is not None and spec["condition"] == "not_acknowledged":
        schedule(deps, t, policy, start=now)  # work under way still has a resolution clock
    note(uow, t, actor=actor, kind="in_progress", now=now, text="Work in progress" + (f": {text}" if text else ""))
    await changed(uow, t, now=now)
    return t


async def resolve(
    uow: UnitOfWork, deps: Deps, *, ticket: Ticket, actor: Author, reason: str, now: datetime, text: str | None = None,
    duplicate_of: str | None = None,
) -> Ticket:
    t = ticket
    _require(t, OPEN_STATUSES, "resolve")
    if reason == "duplicate":
        if not duplicate_of:
            raise Invalid("reason duplicate needs duplicate_of: the ticket that is kept", field="duplicate_of")
        if duplicate_of == t.id:
            raise Invalid("a ticket cannot duplicate itself", field="duplicate_of")
        await referenced_ticket(uow, duplicate_of, field="duplicate_of")
        await _link(uow, t, other_id=duplicate_of, kind="duplicates", actor=actor, now=now)
    t.status, t.resolved_at, t.resolved_by, t.resolution_reason = "resolved", now, actor.label[:100], reason
    t.open_episode, t.next_escalation_at, t.ack_expires_at, t.review_pending, t.updated_at = None, None, None, False, now
    note(uow, t, actor=actor, kind="resolved", now=now, text=f"Resolved: {reason}" + (f" ({text})" if text else ""),
         reason=reason)
    uow.emit(TicketResolved(ticket_id=t.id, department_code=t.department_code, reason=reason, by=actor.label, at=now),  # type: ignore[arg-type]
             subject=t.id)
    await changed(uow, t, now=now)
    return t


async def close(uow: UnitOfWork, *, ticket_id: str, actor: Author, now: datetime, text: str | None = None) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, ("resolved",), "close")
    t.status, t.closed_at, t.updated_at = "closed", now, now
    note(uow, t, actor=actor, kind="closed", now=now, text="Closed" + (f": {text}" if text else ""))
    await changed(uow, t, now=now)
    return t


async def reopen(uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime, text: str) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, ("resolved",), "reopen")
    if t.episode_id:
        other = (await uow.session.execute(sa.select(Ticket.id).where(Ticket.open_episode == t.episode_id))).first()
        if other:
            raise Conflict(f"ticket {other[0]} is already open for this breach episode", field="status")
        t.open_episode = t.episode_id
    t.status, t.resolved_at, t.resolution_reason, t.acknowledged_at = "open", None, None, None
    t.level_entered_at, t.level_repeats, t.updated_at = now, 0, now
    schedule(deps, t, await _policy_of(uow, t), start=now)
    note(uow, t, actor=actor, kind="reopened", now=now, text=f"Reopened: {text}")
    await changed(uow, t, now=now)
    return t


async def change_severity(
    uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, severity: int, reason: str, now: datetime
) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, OPEN_STATUSES, "change the severity of")
    if severity == t.severity:
        raise Conflict(f"the severity is already {severity}", field="severity")
    old, t.severity, t.updated_at = t.severity, severity, now
    if t.next_escalation_at is not None:
        schedule(deps, t, await _policy_of(uow, t), start=t.level_entered_at)
    note(uow, t, actor=actor, kind="severity_changed", now=now, text=f"Severity {old} -> {severity}: {reason}",
         old=old, new=severity, reason=reason)
    return t


async def add_note(uow: UnitOfWork, *, ticket_id: str, actor: Author, text: str, now: datetime) -> TimelineEntry:
    t = await get_ticket(uow, ticket_id)
    entry = TimelineEntry(ticket_id=t.id, at=now, actor=actor.label[:100], kind="note", text=text, data={},
                          author=actor.as_dict())
    uow.session.add(entry)
    t.updated_at = now
    await uow.flush()
    return entry


async def assign(
    uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, data: schemas.Assign, now: datetime
) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, OPEN_STATUSES, "reassign")
    old = assignee_of(t)
    # the directory's record, not the caller's spelling: a made-up person is refused
    p = await references.known_person(uow, deps, data.assignee.person_id)
    if old and old["person_id"] == p.person_id and (data.role or t.assignee_role) == t.assignee_role:
        raise Conflict(f"the ticket is already assigned to {p.name}", field="assignee.person_id")
    t.assignee_id, t.assignee_name, t.assignee_title = p.person_id, p.name, p.title
    t.assignee_role, t.updated_at = data.role or t.assignee_role, now
    note(uow, t, actor=actor, kind="reassigned", now=now,
         text=f"Reassigned from {old['name'] if old else 'nobody'} to {p.name}: {data.reason}",
         old=old, new={"person_id": p.person_id, "name": p.name, "title": p.title}, reason=data.reason)
    new = {"person_id": p.person_id, "name": p.name, "title": p.title}
    await notices.notify(uow, deps, t, kind="assigned", level=t.level, person=new, role=t.assignee_role, now=now,
                         text=f"{actor.label} assigned this ticket to you: {data.reason}",
                         key=f"assigned:{t.id}:{p.person_id}:{now.isoformat()}", cc=[old] if old else None)
    await changed(uow, t, now=now)
    return t


async def mute_ticket(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.MuteIn, now: datetime) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    _require(t, OPEN_STATUSES, "mute")
    check_mute_until(data.until, now)
    t.muted_until, t.mute_reason, t.updated_at = data.until, data.reason, now
    uow.session.add(Mute(ticket_id=t.id, until=data.until, reason=data.reason, created_by=actor.label[:100],
                         author=actor.as_dict(), created_at=now))
    note(uow, t, actor=actor, kind="muted", now=now, text=f"Escalation muted until {data.until.isoformat()}: {data.reason}",
         until=data.until.isoformat())
    return t


async def unmute_ticket(uow: UnitOfWork, *, ticket_id: str, actor: Author, now: datetime) -> Ticket:
    t = await get_ticket(uow, ticket_id, lock=True)
    if t.muted_until is None:
        raise Conflict("the ticket is not muted", field="muted_until")
    t.muted_until, t.mute_reason, t.updated_at = None, None, now
    await uow.session.execute(
        sa.update(Mute).where(Mute.ticket_id == t.id, Mute.cancelled_at.is_(None)).values(cancelled_at=now)
    )
    note(uow, t, actor=actor, kind="unmuted", now=now, text="Escalation unmuted")
    return t


async def mute_department(
    uow: UnitOfWork, deps: Deps, *, actor: Author, data: schemas.DepartmentMuteIn, now: datetime
) -> Mute:
    check_mute_until(data.until, now)
    await references.known_department(uow, deps, data.department_code)
    m = Mute(department_code=data.department_code, until=data.until, reason=data.reason, created_by=actor.label[:100],
             author=actor.as_dict(), created_at=now)
    uow.session.add(m)
    await uow.flush()
    return m


async def cancel_mute(uow: UnitOfWork, *, mute_id: int, now: datetime) -> Mute:
    m = await uow.session.get(Mute, mute_id)
    if m is None:
        raise NotFound(f"no mute {mute_id}", field="mute_id")
    if m.cancelled_at is not None:
        raise Conflict(f"mute {mute_id} was already cancelled at {m.cancelled_at.isoformat()}", field="mute_id")
    m.cancelled_at = now
    if m.ticket_id:
        t = await get_ticket(uow, m.ticket_id)
        t.muted_until, t.mute_reason = None, None
    return m


async def muted_until(uow: UnitOfWork, t: Ticket, now: datetime) -> tuple[datetime, str] | None:
    if t.muted_until and t.muted_until > now:
        return t.muted_until, t.mute_reason or ""
    m = (
        await uow.session.execute(
            sa.select(Mute).where(
                Mute.department_code == t.department_code, Mute.cancelled_at.is_(None), Mute.until > now
            ).order_by(Mute.until.desc()).limit(1)
        )
    ).scalar_one_or_none()
    return (m.until, f"{t.department_code} muted: {m.reason}") if m else None


async def _link(uow: UnitOfWork, t: Ticket, *, other_id: str, kind: str, actor: Author, now: datetime) -> None:
    exists = (await uow.session.execute(sa.select(TicketLink.id).where(
        TicketLink.ticket_id == t.id, TicketLink.other_id == other_id, TicketLink.kind == kind))).first()
    if exists:
        return
    uow.session.add(TicketLink(ticket_id=t.id, other_id=other_id, kind=kind, created_by=actor.label[:100], created_at=now))
    note(uow, t, actor=actor, kind="linked", now=now, text=f"Linked: {kind} {other_id}", other=other_id, link=kind)


async def add_link(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.LinkIn, now: datetime) -> Ticket:
    t = await get_ticket(uow, ticket_id)
    if data.other_ticket_id == t.id:
        raise Invalid("a ticket cannot link to itself", field="other_ticket_id")
    await referenced_ticket(uow, data.other_ticket_id, field="other_ticket_id")
    await _link(uow, t, other_id=data.other_ticket_id, kind=data.kind, actor=actor, now=now)
    return t


async def _action_owner(uow: UnitOfWork, deps: Deps | None, data: schemas.ActionIn) -> tuple[str, str | None]:
    """The owner by name, or a directory person (their name from the copy: mail reaches them when it falls due)."""
    if data.owner_person_id:
        if deps is None:
            raise Invalid("an owner person needs the directory", field="owner_person_id")
        p = await references.known_person(uow, deps, data.owner_person_id, field="owner_person_id")
        return p.name, p.person_id
    if not data.owner:
        raise Invalid("name the owner, or give owner_person_id", field="owner")
    return data.owner, None


async def add_action(uow: UnitOfWork, deps: Deps | None = None, *, ticket_id: str, actor: Author, data: schemas.ActionIn, now: datetime) -> Action:
    t = await get_ticket(uow, ticket_id, lock=True)  # locked: this ticket's snapshots are versioned in order
    check_due(data.due_date, now.date())
    owner, owner_id = await _action_owner(uow, deps, data)
    a = Action(ticket_id=t.id, description=data.description, owner=owner, owner_person_id=owner_id,
               due_date=data.due_date, status=data.status, created_by=actor.label[:100], author=actor.as_dict(),
               created_at=now, updated_at=now)
    uow.session.add(a)
    await uow.flush()
    note(uow, t, actor=actor, kind="action_added", now=now,
         text=f"Action: {data.description} (owner {owner}" + (f", due {data.due_date}" if data.due_date else "") + ")",
         action_id=a.id)
    await changed(uow, t, now=now)
    return a


async def update_action(
    uow: UnitOfWork, *, ticket_id: str, action_id: int, actor: Author, data: schemas.ActionUpdate, now: datetime
) -> Action:
    t = await get_ticket(uow, ticket_id, lock=True)
    a = await uow.session.get(Action, action_id)
    if a is None or a.ticket_id != t.id:
        raise NotFound(f"no action {action_id} on ticket {ticket_id}", field="action_id")
    check_due(data.due_date, now.date())
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if getattr(a, k) != v}
    for k, v in changes.items():
        setattr(a, k, v)
    if changes:
        a.updated_at = now
        note(uow, t, actor=actor, kind="action_updated", now=now,
             text=f"Action {a.id} updated: " + ", ".join(f"{k} = {v}" for k, v in changes.items()),
             action_id=a.id, changes={k: str(v) for k, v in changes.items()})
        await changed(uow, t, now=now)
    return a


# --- projects --------------------------------------------------------------------------------


async def promote(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.Promote, now: datetime) -> Project:
    t = await get_ticket(uow, ticket_id, lock=True)
    if t.project_id:
        raise Conflict(f"ticket already belongs to project {t.project_id}", field="project_id")
    check_due(data.due_date, now.date())
    for i, m in enumerate(data.milestones):
        check_due(m.due_date, now.date(), field=f"milestones.{i}.due_date")
    p = Project(title=data.title or t.title, department_code=t.department_code, owner=data.owner, goal=data.goal,
                due_date=data.due_date, status="active", created_by=actor.label[:100], author=actor.as_dict(),
                created_at=now, updated_at=now)
    uow.session.add(p)
    await uow.flush()
    for m in data.milestones:
        uow.session.add(Milestone(project_id=p.id, title=m.title, due_date=m.due_date))
    linked = [t]
    for i, tid in enumerate(data.link_tickets):
        if tid == t.id or any(x.id == tid for x in linked):
            continue
        other = await referenced_ticket(uow, tid, field=f"link_tickets.{i}")
        if other.project_id:
            raise Conflict(f"ticket {tid} already belongs to project {other.project_id}", field=f"link_tickets.{i}")
        linked.append(other)
    for other in linked:
        other.project_id = p.id
        note(uow, other, actor=actor, kind="promoted", now=now,
             text=f"Promoted to project '{p.title}' (owner {p.owner}" + (f", due {p.due_date}" if p.due_date else "") + ")",
             project_id=p.id)
        uow.emit(TicketPromoted(ticket_id=other.id, department_code=other.department_code, project_id=p.id,
                                owner=p.owner, due_date=p.due_date), subject=other.id)
    await uow.flush()
    return p


async def get_project(uow: UnitOfWork, project_id: str) -> Project:
    p = await uow.session.get(Project, project_id)
    if p is None:
        raise NotFound(f"no project {project_id}", field="project_id")
    return p


async def project_read(uow: UnitOfWork, p: Project, today: date) -> schemas.ProjectRead:
    milestones = (await uow.session.execute(
        sa.select(Milestone).where(Milestone.project_id == p.id).order_by(Milestone.due_date.is_(None), Milestone.due_date, Milestone.id)
    )).scalars().all()
    tickets = (await uow.session.execute(sa.select(Ticket).where(Ticket.project_id == p.id).order_by(Ticket.opened_at))).scalars().all()
    ids = [t.id for t in tickets]
    actions = (await uow.session.execute(sa.select(Action).where(Action.ticket_id.in_(ids)))).scalars().all() if ids else []
    by_status: dict[str, int] = {}
    for t in tickets:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    late_milestones = sum(1 for m in milestones if not m.done and m.due_date and m.due_date < today)
    late_actions = sum(1 for a in actions if a.status not in ("done", "cancelled") and a.due_date and a.due_date < today)
    open_tickets = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
    if p.status != "active":
        health = p.status
    elif p.due_date and p.due_date < today:
        health = "overdue"
    elif late_milestones or late_actions or any(t.level >= 2 for t in tickets if t.status in OPEN_STATUSES):
        health = "at_risk"
    else:
        health = "on_track"
    rollup = {
        "health": health, "tickets": by_status, "open_tickets": open_tickets,
        "milestones_done": sum(1 for m in milestones if m.done), "milestones_total": len(milestones),
        "late_milestones": late_milestones, "actions_open": sum(1 for a in actions if a.status not in ("done", "cancelled")),
        "late_actions": late_actions,
    }
    return schemas.ProjectRead(
        id=p.id, title=p.title, department_code=p.department_code, owner=p.owner, goal=p.goal, due_date=p.due_date,
        status=p.status, created_by=p.created_by, author=p.author, created_at=p.created_at,
        milestones=[schemas.MilestoneRead.model_validate(m) for m in milestones], tickets=ids, rollup=rollup,
    )


# --- the directory's local copy --------------------------------------------------------------


async def apply_senior_team(uow: UnitOfWork, *, payload: SeniorTeamChanged, event_time: datetime, now: datetime) -> None:
    """Replace the department's copy in one step; an older event never overwrites a newer copy."""
    row = await uow.session.get(SeniorTeamCopy, payload.department_code)
    if row is not None and row.team_event_time and row.team_event_time > event_time:
        return
    if row is None:  # add_if_absent: a request's on-demand copy may store it at the same time
        row = await uow.add_if_absent(SeniorTeamCopy, {"department_code": payload.department_code, "updated_at": now})
    row.department_id, row.department_name, row.cluster_code = payload.department_id, payload.department_name, payload.cluster_code
    row.roles = {k: (v.model_dump() if v else None) for k, v in payload.roles.items()}
    row.deputy_mayor = payload.deputy_mayor.model_dump() if payload.deputy_mayor else None
    row.managing_director = payload.managing_director.model_dump() if payload.managing_director else None
    row.team_event_time, row.updated_at = event_time, now
    for holder in [*payload.roles.values(), payload.deputy_mayor, payload.managing_director]:
        await references.remember_person(uow, holder.model_dump() if holder else None, now=now)


async def apply_department(uow: UnitOfWork, *, payload: DepartmentUpserted, now: datetime) -> None:
    row = await uow.session.get(SeniorTeamCopy, payload.code)
    if row is None:
        row = await uow.add_if_absent(SeniorTeamCopy, {"department_code": payload.code, "roles": None, "updated_at": now})
    row.department_id, row.department_name = payload.department_id, payload.name
    row.cluster_code, row.active, row.updated_at = payload.cluster_code, payload.active, now


async def apply_person(uow: UnitOfWork, *, payload: PersonUpserted, now: datetime) -> None:
    row = await uow.session.get(PersonCopy, payload.person_id)
    if row is None:
        row = await uow.add_if_absent(PersonCopy, {"person_id": payload.person_id, "name": payload.name, "updated_at": now})
    row.name, row.title, row.active, row.updated_at = payload.name, payload.title, payload.active, now
    if payload.email:  # an older event without one keeps what the copy knew
        row.email = payload.email.lower()
    row.notify = payload.notify


# --- the scheduler's work --------------------------------------------------------------------


def due_stmt(now: datetime, batch: int) -> sa.Select:  # type: ignore[type-arg]
    return (
        sa.select(Ticket)
        .where(
            Ticket.status.in_(OPEN_STATUSES),
            sa.or_(
                Ticket.next_escalation_at <= now,
                sa.and_(Ticket.status == "acknowledged", Ticket.ack_expires_at <= now),
            ),
        )
        .order_by(Ticket.next_escalation_at, Ticket.id)
        .limit(batch)
    )


async def escalate_due(uow: UnitOfWork, deps: Deps, *, now: datetime, batch: int = 50) -> list[str]:
    """Claim due tickets (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's BEGIN IMMEDIATE
    serializes writers) and process each in a savepoint. Returns what happened, for tests and logs."""
    stmt = due_stmt(now, batch)
    if uow.dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    tickets = (await uow.session.execute(stmt)).scalars().all()
    done: list[str] = []
    for t in tickets:
        mark = len(uow.events)
        try:
            async with uow.session.begin_nested():
                outcome = await process_due(uow, deps, t, now=now)
                await uow.flush()
        except IntegrityError:
            # Another scheduler recorded this level first: ours is rolled back, theirs stands.
            del uow.events[mark:]
            log.info("escalation_already_recorded", ticket=t.id)
            continue
        if outcome:
            done.append(f"{t.id}:{outcome}")
    return done


async def process_due(uow: UnitOfWork, deps: Deps, t: Ticket, *, now: datetime) -> str | None:
    policy = await _policy_of(uow, t)
    outcome = None
    if t.status == "acknowledged" and t.ack_expires_at and t.ack_expires_at <= now:
        note(uow, t, actor=SYSTEM, kind="ack_stale", now=now,
             text=f"Acknowledged by {t.acknowledged_by} at {t.acknowledged_at.isoformat() if t.acknowledged_at else '?'} "
                  "but no progress since: back to open")
        t.status, t.acknowledged_at, t.ack_expires_at, t.updated_at = "open", None, None, now
        if t.next_escalation_at is None:
            t.level_entered_at, t.level_repeats = now, 0
            schedule(deps, t, policy, start=now)
        outcome = "reopened"
        await changed(uow, t, now=now)
    if t.next_escalation_at is None or t.next_escalation_at > now:
        return outcome
    mute = await muted_until(uow, t, now)
    if mute is not None:
        t.next_escalation_at = mute[0]
        note(uow, t, actor=SYSTEM, kind="escalation_held", now=now,
             text=f"Escalation held until {mute[0].isoformat()}: {mute[1]}")
        return "held"
    spec = level_spec(policy.levels, t.level)
    resolving = spec is not None and spec["condition"] == "not_acknowledged" and t.status == "in_progress"
    if spec is None or (spec["condition"] == "not_acknowledged" and t.status != "open" and not resolving):
        t.next_escalation_at = None
        return outcome
    delay = (resolution_delay(policy.levels, t.level, t.severity) if resolving else delay_for(spec, t.severity)) \
        or {"amount": 0, "unit": "calendar_hours"}
    chain = await current_chain(uow, t.department_code, t.chain or [])
    if not resolving and t.level_repeats < int(spec.get("repeat", 0)):
        t.level_repeats += 1
        holder = _holder(chain, t.level) or assignee_of(t)
        await notices.notify(uow, deps, t, kind="reminder", level=t.level, person=holder, role=level_role(t), now=now,
                             text=f"Reminder {t.level_repeats} of {spec['repeat']}: {t.title} is still {t.status}",
                             key=f"reminder:{t.id}:{t.level}:{t.level_repeats}:{notices.person_key(holder)}")
        note(uow, t, actor=SYSTEM, kind="reminder", now=now,
             text=f"Reminder {t.level_repeats} of {spec['repeat']} at level {t.level} sent to "
                  f"{holder['name'] if holder else 'nobody (vacant)'}")
        t.next_escalation_at = add_delay(deps.calendar, now, delay, deps.settings.delay_scale)
        return "reminded"
    to = next_level(policy.levels, t.level)
    if to is None:
        t.next_escalation_at = None
        note(uow, t, actor=SYSTEM, kind="top_reached", now=now, text="Top of the chain reached: no further escalation")
        return "top"
    cond = "acknowledged" if spec["condition"] == "not_acknowledged" and not resolving else "resolved"
    reason = f"not {cond} within {delay['amount']:g} {delay['unit'].replace('_', ' ')} at level {t.level}"
    if resolving:
        reason += " (in progress since " + (t.in_progress_at.isoformat() if t.in_progress_at else "?") + ")"
    if deps.settings.delay_scale != 1.0:
        reason += f" (delays scaled by {deps.settings.delay_scale:g} for the demo)"
    await escalate(uow, deps, t, to_level=to, reason=reason, chain=chain, now=now)
    return f"escalated:{to}"


def _holder(chain: list[dict[str, Any]], level: int) -> dict[str, Any] | None:
    link = next((c for c in chain if c["level"] == level), None)
    return link.get("person") if link else None


async def escalate(
    uow: UnitOfWork, deps: Deps, t: Ticket, *, to_level: int, reason: str, chain: list[dict[str, Any]], now: datetime
) -> None:
    role = LEVEL_ROLES.get(to_level, f"level_{to_level}")
    holder = _holder(chain, to_level)
    notified: list[dict[str, Any]] = []
    extra = ""
    if holder:
        notified.append(holder)
    else:
        # A vacant level: tell the next holder up, so the flag never lands on an empty chair.
        above = next((c for c in sorted(chain, key=lambda c: c["level"]) if c["level"] > to_level and c.get("person")), None)
        if above:
            notified.append(above["person"])
            extra = f"; the {role} role is vacant, so the {above['role']} was notified"
        else:
            extra = f"; the {role} role is vacant and nobody above is known"
    recipients = list(notified)
    # the previous holder (and the assignee) are copied on the message to the new level
    previous = [p for p in (_holder(chain, t.level) or _holder(t.chain or [], t.level), assignee_of(t)) if p]
    if t.assignee_id and all(p["person_id"] != t.assignee_id for p in notified):
        notified.append(assignee_of(t))  # type: ignore[arg-type]
    uow.session.add(Escalation(ticket_id=t.id, department_code=t.department_code, from_level=t.level, to_level=to_level,
                               level_role=role, reason=reason + extra, notified=notified, at=now))
    await uow.flush()  # the unique (ticket_id, to_level) fires here if another scheduler won
    from_level = t.level
    t.level, t.level_entered_at, t.level_repeats, t.updated_at = to_level, now, 0, now
    schedule(deps, t, await _policy_of(uow, t), start=now)
    names = ", ".join(p["name"] for p in notified) or "nobody"
    note(uow, t, actor=SYSTEM, kind="escalated", now=now, text=f"Escalated to level {to_level} ({role}): {reason}{extra}. "
         f"Notified: {names}", from_level=from_level, to_level=to_level, notified=notified)
    targets: list[dict[str, Any] | None] = [*recipients] or [None]  # a vacant chain: logged for nobody
    for p in targets:
        await notices.notify(uow, deps, t, kind="escalated", level=to_level, person=p, role=role, now=now,
                             text=f"Escalated to you ({role.replace('_', ' ')}): {t.title}. {reason}{extra}",
                             key=f"escalated:{t.id}:{to_level}:{notices.person_key(p)}",
                             cc=[c for c in previous if not p or c.get("person_id") != p.get("person_id")])
    uow.emit(
        TicketEscalated(ticket_id=t.id, department_code=t.department_code, severity=t.severity, from_level=from_level,
                        to_level=to_level, level_role=role, notified=[_person(p) for p in notified],  # type: ignore[misc]
                        reason=reason + extra),
        subject=t.id,
    )
    await changed(uow, t, now=now)
    metrics.ESCALATIONS.labels(t.department_code, str(to_level)).inc()
