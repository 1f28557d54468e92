"""The scheduler's work: tickets whose escalation time has come are reminded, held by a mute,
or climb the chain (the rule that decides which is ``policy.due_step``). Each ticket is
processed in its own savepoint; the worker's loop owns the commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from citystat_common.events import TicketEscalated
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation import metrics, notices, store, ticket_feed
from escalation.authors import SYSTEM
from escalation.deps import Deps
from escalation.lifecycle import next_status
from escalation.models import LEVEL_ROLES, Escalation, Ticket
from escalation.mutes import muted_until
from escalation.policies import policy_of, schedule
from escalation.policy import add_delay, due_step
from escalation.routing import current_chain
from escalation.ticket_people import assignee_of, holder, level_role, person_ref
from escalation.timeline import note

log = get_logger(__name__)


async def escalate_due(uow: UnitOfWork, deps: Deps, *, now: datetime, batch: int = 50) -> list[str]:
    """Claim due tickets and process each in a savepoint. Returns what happened, for tests and logs."""
    done: list[str] = []
    for t in await store.claim_due(uow, now=now, batch=batch):
        mark = len(uow.events)
        try:
            async with uow.session.begin_nested():
                outcome = await process_due(uow, deps, t=t, now=now)
                await uow.flush()
        except IntegrityError:
            # Another scheduler recorded this level first: ours is rolled back, theirs stands.
            del uow.events[mark:]
            log.info("escalation_already_recorded", ticket=t.id)
            continue
        if outcome:
            done.append(f"{t.id}:{outcome}")
    return done


async def process_due(uow: UnitOfWork, deps: Deps, *, t: Ticket, now: datetime) -> str | None:
    policy = await policy_of(uow, t)
    outcome = None
    if t.status == "acknowledged" and t.ack_expires_at and t.ack_expires_at <= now:
        note(uow, t, actor=SYSTEM, kind="ack_stale", now=now,
             text=f"Acknowledged by {t.acknowledged_by} at {t.acknowledged_at.isoformat() if t.acknowledged_at else '?'} "
                  "but no progress since: back to open")
        t.status = next_status(t.status, "let the acknowledgement lapse")
        t.acknowledged_at, t.ack_expires_at, t.updated_at = None, None, now
        if t.next_escalation_at is None:
            t.level_entered_at, t.level_repeats = now, 0
            schedule(deps, t, policy, start=now)
        outcome = "reopened"
        await ticket_feed.publish(uow, t, now=now)
    if t.next_escalation_at is None or t.next_escalation_at > now:
        return outcome
    mute = await muted_until(uow, t, now)
    if mute is not None:
        t.next_escalation_at = mute[0]
        note(uow, t, actor=SYSTEM, kind="escalation_held", now=now,
             text=f"Escalation held until {mute[0].isoformat()}: {mute[1]}")
        return "held"
    step = due_step(policy.levels, level=t.level, status=t.status, severity=t.severity, repeats=t.level_repeats,
                    in_progress_at=t.in_progress_at, scale=deps.settings.delay_scale)
    if step.kind == "stop":
        t.next_escalation_at = None
        return outcome
    if step.kind == "top":
        t.next_escalation_at = None
        note(uow, t, actor=SYSTEM, kind="top_reached", now=now, text="Top of the chain reached: no further escalation")
        return "top"
    chain = await current_chain(uow, t.department_code, t.chain or [])
    if step.kind == "remind":
        t.level_repeats = step.reminder
        who = holder(chain, t.level) or assignee_of(t)
        await notices.notify(uow, deps, t=t, kind="reminder", level=t.level, person=who, role=level_role(t), now=now,
                             text=f"Reminder {step.reminder} of {step.reminders}: {t.title} is still {t.status}",
                             key=f"reminder:{t.id}:{t.level}:{step.reminder}:{notices.person_key(who)}")
        note(uow, t, actor=SYSTEM, kind="reminder", now=now,
             text=f"Reminder {step.reminder} of {step.reminders} at level {t.level} sent to "
                  f"{who['name'] if who else 'nobody (vacant)'}")
        t.next_escalation_at = add_delay(deps.calendar, now, step.delay, deps.settings.delay_scale)
        return "reminded"
    await escalate(uow, deps, t=t, to_level=step.to_level, reason=step.reason, chain=chain, now=now)
    return f"escalated:{step.to_level}"


async def escalate(
    uow: UnitOfWork, deps: Deps, *, t: Ticket, to_level: int, reason: str, chain: list[dict[str, Any]], now: datetime
) -> None:
    role = LEVEL_ROLES.get(to_level, f"level_{to_level}")
    new_holder = holder(chain, to_level)
    notified: list[dict[str, Any]] = []
    extra = ""
    if new_holder:
        notified.append(new_holder)
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
    previous = [p for p in (holder(chain, t.level) or holder(t.chain or [], t.level), assignee_of(t)) if p]
    assignee = assignee_of(t)
    if assignee and all(p["person_id"] != assignee["person_id"] for p in notified):
        notified.append(assignee)
    uow.session.add(Escalation(ticket_id=t.id, department_code=t.department_code, from_level=t.level, to_level=to_level,
                               level_role=role, reason=reason + extra, notified=notified, at=now))
    await uow.flush()  # the unique (ticket_id, to_level) fires here if another scheduler won
    from_level = t.level
    t.level, t.level_entered_at, t.level_repeats, t.updated_at = to_level, now, 0, now
    schedule(deps, t, await policy_of(uow, t), start=now)
    names = ", ".join(p["name"] for p in notified) or "nobody"
    note(uow, t, actor=SYSTEM, kind="escalated", now=now, text=f"Escalated to level {to_level} ({role}): {reason}{extra}. "
         f"Notified: {names}", from_level=from_level, to_level=to_level, notified=notified)
    targets: list[dict[str, Any] | None] = [*recipients] or [None]  # a vacant chain: logged for nobody
    for p in targets:
        await notices.notify(uow, deps, t=t, kind="escalated", level=to_level, person=p, role=role, now=now,
                             text=f"Escalated to you ({role.replace('_', ' ')}): {t.title}. {reason}{extra}",
                             key=f"escalated:{t.id}:{to_level}:{notices.person_key(p)}",
                             cc=[c for c in previous if not p or c.get("person_id") != p.get("person_id")])
    uow.emit(
        TicketEscalated(ticket_id=t.id, department_code=t.department_code, severity=t.severity, from_level=from_level,
                        to_level=to_level, level_role=role, notified=[person_ref(p) for p in notified],  # type: ignore[misc]
                        reason=reason + extra),
        subject=t.id,
    )
    await ticket_feed.publish(uow, t, now=now)
    metrics.ESCALATIONS.labels(t.department_code, str(to_level)).inc()
