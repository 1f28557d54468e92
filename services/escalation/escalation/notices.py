"""Messages to people, written with the change that causes them (the notifications table) and sent
after it by the worker's dispatcher: a ticket opened or assigned to you, escalated to your level
(the previous holder copied), your acknowledgement about to expire, an action you own falling due,
your ticket's indicator recovered pending review.

Each message names the indicator, the miss (value vs target), the next escalation time in the
city's zone and the link to the ticket's page. Its ``key`` names the event and the recipient:
a unique column, so a replayed event or a second scheduler writes nothing twice, and the mail's
Message-ID comes from it (citystat_common.mail), so a resend after a crash carries the same id.
A person whose directory preference is ``digest`` gets their mail in one message when the business
calendar next opens."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from citystat_common.db import dialect_insert
from citystat_common.uow import UnitOfWork
from escalation.models import Notification, PersonCopy, Ticket

if TYPE_CHECKING:
    from escalation.deps import Deps

SEVERITY = {1: "critical", 2: "high", 3: "medium", 4: "low"}
SUBJECTS = {
    "opened": "New ticket for you", "assigned": "Ticket assigned to you", "escalated": "Ticket escalated to you",
    "reminder": "Reminder", "ack_expiring": "Your acknowledgement is about to expire",
    "action_due": "An action you own is due", "review": "Indicator recovered: your ticket awaits review",
}


def ticket_url(deps: Deps, ticket_id: str) -> str:
    s = deps.settings
    return f"{s.browser_url(s.host, s.port)}/board/tickets/{ticket_id}"


def city_time(deps: Deps, moment: datetime | None) -> str:
    return moment.astimezone(deps.calendar.tz).strftime("%A %d %B %Y, %H:%M %Z") if moment else "none scheduled"


def miss_text(t: Ticket) -> str:
    if t.value is None:
        return "no figure (a flag raised by staff)" if t.source == "manual" else "no value reported"
    text = f"{t.value:g}"
    if t.target is not None:
        text += f" against a target of {t.target:g}"
    if t.magnitude is not None:
        text += f" ({t.magnitude:.0%} worse than the {t.basis or 'target'})"
    return text + (f", period {t.period}" if t.period else "")


def digest_time(deps: Deps, now: datetime) -> datetime:
    """When the business calendar next opens after ``now`` (tomorrow's opening if it is open now)."""
    cal = deps.calendar
    opening = cal.next_open(now)
    if opening <= now:
        tomorrow = now.astimezone(cal.tz).date() + timedelta(days=1)
        opening = cal.next_open(datetime.combine(tomorrow, time(0), cal.tz))
    return opening


async def _reach(uow: UnitOfWork, person: dict[str, Any] | None) -> tuple[str | None, str]:
    """A person's email and notification mode, from the copy of the directory."""
    if not person:
        return None, "immediate"
    copy = await uow.session.get(PersonCopy, person["person_id"]) if person.get("person_id") else None
    email = (copy.email if copy else None) or person.get("email")
    return (email.lower() if email else None), (copy.notify if copy else "immediate")


def mail_text(deps: Deps, t: Ticket, *, kind: str, text: str, recipient: str | None) -> str:
    indicator = t.indicator_code or "none (a flag raised by hand)"
    lines = [
        f"Dear {recipient}," if recipient else "Hello,", "", text, "",
        f"Ticket: {t.title}", f"Department: {t.department_name or t.department_code}",
        f"Indicator: {indicator}", f"Miss: {miss_text(t)}", f"Severity: {SEVERITY.get(t.severity, t.severity)}",
        f"Status: {t.status.replace('_', ' ')}, level {t.level}",
        f"Next escalation: {city_time(deps, t.next_escalation_at)}", "",
        f"Open the ticket: {ticket_url(deps, t.id)}", "",
        "You receive this because CityStat routes this ticket to you.",
    ]
    return "\n".join(lines)


async def notify(
    uow: UnitOfWork, deps: Deps, *, t: Ticket, kind: str, level: int, person: dict[str, Any] | None,
    role: str | None, now: datetime, text: str, key: str, cc: list[dict[str, Any]] | None = None,
) -> None:
    """One message for one recipient about one event (``key``); written once whatever replays."""
    email, mode = await _reach(uow, person)
    copies: list[dict[str, Any]] = []
    for other in cc or []:
        other_email, _ = await _reach(uow, other)
        if other_email and other_email != email and all(c["email"] != other_email for c in copies):
            copies.append({"name": other.get("name"), "email": other_email})
    channels = deps.channels()
    # A person whose email the copy does not hold yet (the directory's events may trail the breach
    # at start-up) still gets mail: the dispatcher looks the email up again when it sends.
    if deps.settings.smtp() is not None and (email or (person and person.get("person_id"))):
        channels.append("email")
    name = person["name"] if person else None
    body = {
        "kind": kind, "text": text, "ticket_id": t.id, "title": t.title, "department": t.department_code,
        "severity": t.severity, "level": level, "status": t.status, "recipient": person, "recipient_role": role,
        "at": now.isoformat(), "indicator": t.indicator_code, "miss": miss_text(t),
        "next_escalation": city_time(deps, t.next_escalation_at), "url": ticket_url(deps, t.id),
        "subject": f"[CityStat] {SUBJECTS.get(kind, kind)}: {t.title}"[:200],
        "mail_text": mail_text(deps, t, kind=kind, text=text, recipient=name), "key": key,
    }
    values = {
        "ticket_id": t.id, "kind": kind, "level": level, "recipient_id": person.get("person_id") if person else None,
        "recipient_name": name, "recipient_role": role, "recipient_email": email, "cc": copies, "key": key[:200],
        "digest_at": digest_time(deps, now) if email and mode == "digest" else None, "body": body,
        "status": "pending", "attempts": 0, "channels": channels, "next_attempt_at": now, "created_at": now,
    }
    await uow.session.execute(dialect_insert(Notification.__table__, uow.dialect).values(**values)
                              .on_conflict_do_nothing())


def person_key(person: dict[str, Any] | None) -> str:
    return str(person.get("person_id") or person.get("email")) if person else "nobody"
