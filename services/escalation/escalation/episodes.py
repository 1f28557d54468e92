"""Indicator status events on tickets. One open ticket per indicator: a breach of the open
ticket's episode adds to it, and so does a new red period (a new episode) that comes before staff
resolve the ticket ("red again for 2026-11", never a second, unlinked ticket). A recovery notes
the ticket (and resolves it where the policy says so). A staff override (status_changed with
``overridden``) is judgement on the same episode: it goes on the timeline with its author, reason
and expiry, and neither resolves the ticket nor opens one; so does the override's end.

The override contract's fields (``override_by``, ``override_expires_at``, ``computed_status``,
``episode_id`` on every status event) are optional: an older event without them is noted with
"staff" as the author and matched by indicator."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from citystat_common.events import IndicatorBreached, IndicatorRecovered, IndicatorStatusData
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation import notices
from escalation.authors import INDICATORS, SYSTEM, override_author
from escalation.deps import Deps
from escalation.models import OPEN_STATUSES, IndicatorSeen, Ticket, TicketEpisode, TimelineEntry
from escalation.policies import policy_of, schedule
from escalation.policy import derive_severity
from escalation.ticket_people import assignee_of
from escalation.tickets import open_ticket, resolve
from escalation.timeline import describe_miss, note

log = get_logger(__name__)


async def record_indicator(uow: UnitOfWork, payload: IndicatorStatusData, *, now: datetime) -> None:
    """What escalation knows of the indicator (manual flags are checked against it)."""
    values = {"indicator_code": payload.indicator_code, "indicator_name": payload.indicator_name[:300],
              "department_code": payload.department_code, "status": payload.status, "updated_at": now}
    await uow.put(IndicatorSeen, {"indicator_id": payload.indicator_id, **values})


def _answering(*, with_episode: bool) -> tuple[Any, list[Any]]:
    """Which tickets answer for the indicator (bound ``indicator_id``, and ``episode_id`` when
    ``with_episode``), best first: the one open for the episode, else its open tickets, a threshold
    ticket before a manual flag, the oldest first."""
    cond: Any = sa.and_(Ticket.indicator_id == sa.bindparam("indicator_id"), Ticket.status.in_(OPEN_STATUSES))
    order: list[Any] = [sa.case((Ticket.source == "threshold", 0), else_=1), Ticket.opened_at, Ticket.id]
    if with_episode:
        episode: Any = sa.bindparam("episode_id")
        cond = sa.or_(Ticket.open_episode == episode, cond)
        order.insert(0, sa.case((Ticket.open_episode == episode, 0), else_=1))
    return cond, order


# The two reads every indicator event makes, built once each with bound parameters: building them
# per event (the CASEs, the alias, the outer join) cost milliseconds of SQLAlchemy's Python per
# event (pyinstrument), for the same SQL every time.
@functools.cache
def _open_ticket_stmt(with_episode: bool) -> Any:
    cond, order = _answering(with_episode=with_episode)
    return sa.select(Ticket).where(cond).order_by(*order).limit(1)


@functools.cache
def _breach_stmt(with_episode: bool) -> Any:
    cond, order = _answering(with_episode=with_episode)
    past = aliased(Ticket, name="past")
    stale = (
        sa.exists().where(TicketEpisode.episode_id == sa.bindparam("stale_episode_id"),
                          past.id == TicketEpisode.ticket_id,
                          sa.or_(TicketEpisode.recovered_at.is_not(None), past.status.in_(OPEN_STATUSES)))
        .correlate(None).label("stale")
    )
    one = sa.select(sa.literal(1).label("one")).subquery()
    return sa.select(Ticket, stale).select_from(one).outerjoin(Ticket, cond).order_by(*order).limit(1)


def _params(indicator_id: str, episode_id: str | None) -> dict[str, Any]:
    return {"indicator_id": indicator_id, "episode_id": episode_id} if episode_id else {"indicator_id": indicator_id}


async def open_ticket_of(uow: UnitOfWork, *, indicator_id: str, episode_id: str | None) -> Ticket | None:
    """The open ticket that answers for the indicator: its episode's, else any open one of the
    indicator (a threshold ticket before a manual flag, the oldest first). One statement."""
    return (await uow.session.execute(_open_ticket_stmt(bool(episode_id)), _params(indicator_id, episode_id))
            ).scalar_one_or_none()


async def _ticket_for_breach(uow: UnitOfWork, payload: IndicatorBreached) -> tuple[Ticket | None, bool]:
    """The ticket that answers for a breach (as ``open_ticket_of``) and whether the breach's
    episode is stale: recovered, or a past episode of a ticket still open. One statement (it was
    three on every breach): the ticket outer-joined to a one-row select, so that a breach with
    no ticket still gets its row and the flag."""
    params = _params(payload.indicator_id, payload.episode_id) | {"stale_episode_id": payload.episode_id}
    row = (await uow.session.execute(_breach_stmt(bool(payload.episode_id)), params)).one()
    return row[0], bool(row[1])


def _override_text(payload: IndicatorStatusData) -> tuple[str, dict[str, Any]]:
    by = payload.override_by or "staff"
    until, computed = payload.override_expires_at, payload.computed_status
    text = f"Status set to {payload.status} by {by}: {payload.override_reason or 'no reason given'}"
    if until:
        text += f", until {until.isoformat()}"
    if computed and computed != payload.status:
        text += f" (computed status {computed})"
    return text, {"status": payload.status, "by": by, "reason": payload.override_reason,
                  "until": until.isoformat() if until else None, "computed_status": computed}


async def handle_breach(uow: UnitOfWork, deps: Deps, *, payload: IndicatorBreached, now: datetime) -> Ticket | None:
    await record_indicator(uow, payload, now=now)
    t, stale = await _ticket_for_breach(uow, payload)
    if t is not None and t.open_episode == payload.episode_id:
        t.breach_count += 1
        t.value, t.magnitude, t.period = payload.value, payload.magnitude, payload.period
        t.updated_at = now
        note(uow, t, actor=INDICATORS, kind="breach_repeated", now=now,
             text=f"Still red: {describe_miss(payload)} (breach #{t.breach_count})", period=payload.period,
             value=payload.value, magnitude=payload.magnitude)
        return t
    # A recovered episode, or a past one of a ticket still open (it went red again since): a late
    # or replayed breach of it changes nothing.
    if stale:
        log.info("stale_breach_ignored", episode=payload.episode_id, indicator=payload.indicator_code)
        return None
    if t is not None:  # another open ticket of the indicator: it answers for the new episode too
        await _red_again(uow, deps, t=t, payload=payload, now=now)
        return t
    severity = derive_severity(payload.magnitude, payload.critical, deps.settings.severity_bands)
    return await open_ticket(
        uow, deps, now=now, actor=INDICATORS, department_code=payload.department_code,
        title=f"{payload.indicator_name} is {payload.status} ({payload.period})", source="threshold",
        severity=severity, function_tag=payload.function_tag, breach=payload,
        reason=payload.override_reason if payload.overridden else None,
    )


async def _red_again(uow: UnitOfWork, deps: Deps, *, t: Ticket, payload: IndicatorBreached, now: datetime) -> None:
    """A new red period before staff resolved the ticket: the ticket now answers for the new
    episode (its recovery ends it), and escalation resumes if a recovery had stopped it."""
    previous = t.open_episode
    t.open_episode, t.episode_id = payload.episode_id, payload.episode_id
    uow.session.add(TicketEpisode(ticket_id=t.id, episode_id=payload.episode_id))
    t.breach_count += 1
    t.value, t.magnitude, t.period, t.target = payload.value, payload.magnitude, payload.period, payload.target
    t.updated_at = now
    text = f"Red again for {payload.period}: {describe_miss(payload)} (breach #{t.breach_count})"
    if payload.overridden:
        text += f"; {_override_text(payload)[0]}"
    note(uow, t, actor=INDICATORS, kind="red_again", now=now, text=text, period=payload.period,
         episode_id=payload.episode_id, previous_episode_id=previous, value=payload.value, magnitude=payload.magnitude)
    if t.review_pending or t.recovered_at is not None:
        t.review_pending, t.recovered_at = False, None
        t.level_entered_at, t.level_repeats = now, 0
        schedule(deps, t, await policy_of(uow, t), start=now)
        note(uow, t, actor=SYSTEM, kind="review_cancelled", now=now,
             text="Red again after the recovery: review cancelled, escalation resumes")


async def handle_recovery(uow: UnitOfWork, deps: Deps, *, payload: IndicatorRecovered, now: datetime) -> Ticket | None:
    await record_indicator(uow, payload, now=now)
    if payload.overridden:
        # staff judgement, not the data recovering: noted, never resolved as "recovered"
        return await handle_status_changed(uow, deps, payload=payload, now=now, recorded=True)
    t = (
        await uow.session.execute(sa.select(Ticket).where(Ticket.open_episode == payload.episode_id))
    ).scalar_one_or_none()
    if t is None:
        # Already resolved by staff (or never opened, or a past episode of a ticket that went red
        # again): remember the recovery on the episode's tickets.
        await _episode_recovered(uow, payload.episode_id, now)
        await uow.session.execute(
            sa.update(Ticket).where(Ticket.episode_id == payload.episode_id, Ticket.recovered_at.is_(None))
            .values(recovered_at=now)
        )
        return None
    await _episode_recovered(uow, payload.episode_id, now)
    t.recovered_at = now
    note(uow, t, actor=INDICATORS, kind="recovered", now=now,
         text=f"Indicator recovered to {payload.status}: {describe_miss(payload)}", status=payload.status)
    policy = await policy_of(uow, t)
    if policy.resolve_on_recovery:
        await resolve(uow, deps, ticket=t, actor=INDICATORS, reason="recovered", now=now,
                      text="resolved automatically: the indicator recovered (policy)")
    else:
        t.review_pending = True
        t.next_escalation_at = None
        t.ack_expires_at = None
        note(uow, t, actor=SYSTEM, kind="review_pending", now=now,
             text="Recovered, pending review: escalation stopped; staff confirm and resolve")
        owner = assignee_of(t)
        await notices.notify(uow, deps, t=t, kind="review", level=t.level, person=owner, role=t.assignee_role, now=now,
                             text=f"The indicator recovered to {payload.status}: confirm and resolve the ticket, "
                                  "or note why it stays open.",
                             key=f"review:{t.id}:{payload.episode_id}:{notices.person_key(owner)}")
    return t


async def _episode_recovered(uow: UnitOfWork, episode_id: str, now: datetime) -> None:
    await uow.session.execute(
        sa.update(TicketEpisode).where(TicketEpisode.episode_id == episode_id, TicketEpisode.recovered_at.is_(None))
        .values(recovered_at=now)
    )


async def handle_status_changed(
    uow: UnitOfWork, deps: Deps, *, payload: IndicatorStatusData, now: datetime, recorded: bool = False
) -> Ticket | None:
    """An override (or its end, or another status change) on the open ticket's timeline; with no
    open ticket there is nothing to note: a status change never opens one."""
    if not recorded:
        await record_indicator(uow, payload, now=now)
    t = await open_ticket_of(uow, indicator_id=payload.indicator_id, episode_id=payload.episode_id)
    if t is None:
        return None
    if payload.overridden:
        text, data = _override_text(payload)
        note(uow, t, actor=await override_author(uow, payload.override_by), kind="override", now=now, text=text, **data)
    else:
        overridden_before = (await uow.session.execute(
            sa.select(TimelineEntry.id).where(TimelineEntry.ticket_id == t.id, TimelineEntry.kind == "override").limit(1)
        )).first()
        if overridden_before:
            note(uow, t, actor=INDICATORS, kind="override_ended", now=now, status=payload.status,
                 text=f"Override ended: status back to {payload.status} (computed) for {payload.period}")
        else:
            note(uow, t, actor=INDICATORS, kind="status_changed", now=now, status=payload.status,
                 text=f"Status {payload.previous_status or '?'} -> {payload.status} for {payload.period}")
    t.updated_at = now
    return t
