"""Acting on a ticket from its page: plain HTML forms (POST, then back to the ticket), each with the
session's CSRF token. The same permission rule as the API: a form a person may not use is not
offered, and a forged post is refused with a 403 that says who may. Errors are shown on the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citystat_common.errors import DomainError, Invalid
from citystat_common.signin import check_csrf
from citystat_common.uow import UnitOfWork
from citystat_common.web import UoW
from escalation import access, actions, mutes, page_people, projects, schemas, store, tickets
from escalation.authors import Author
from escalation.deps import Deps, EscalationDeps
from escalation.models import OPEN_STATUSES, PersonCopy

router = APIRouter(tags=["board"], include_in_schema=False)
Form = dict[str, str]

# verb -> (the words in a refusal, the statuses it applies to)
FORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "acknowledge": ("acknowledge", ("open",)),
    "start": ("start work on", ("open", "acknowledged")),
    "note": ("add a note to", ("open", "acknowledged", "in_progress", "resolved", "closed")),
    "action": ("log an action on", OPEN_STATUSES),
    "resolve": ("resolve", OPEN_STATUSES),
    "assign": ("reassign", OPEN_STATUSES),
    "severity": ("change the severity of", OPEN_STATUSES),
    "mute": ("mute", OPEN_STATUSES),
    "promote": ("promote", OPEN_STATUSES),
}


def forms_for(status: str, muted: bool, in_project: bool) -> list[str]:
    return [v for v, (_, statuses) in FORMS.items() if status in statuses and not (v == "promote" and in_project)]


def _opt(form: Form, name: str) -> str | None:
    return (form.get(name) or "").strip() or None


def _local_time(value: str | None, tz: Any, field: str) -> datetime | None:
    """A datetime-local field (no zone) in the city's time zone."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=tz)
    except ValueError as exc:
        raise Invalid("give a date and time, e.g. 2026-11-24 10:00", field=field) from exc


async def _person(uow: UnitOfWork, person_id: str | None, field: str) -> PersonCopy:
    p = await uow.session.get(PersonCopy, person_id) if person_id else None
    if p is None:
        raise Invalid("choose a person from the list", field=field)
    return p


async def _act(uow: UnitOfWork, deps: Deps, *, verb: str, ticket_id: str, actor: Author, form: Form,
               now: datetime) -> None:
    if verb == "acknowledge":
        await tickets.acknowledge(uow, deps, ticket_id=ticket_id, actor=actor, now=now, text=_opt(form, "note"))
    elif verb == "start":
        await tickets.start_work(uow, deps, ticket_id=ticket_id, actor=actor, now=now, text=_opt(form, "note"))
    elif verb == "note":
        await tickets.add_note(uow, ticket_id=ticket_id, actor=actor, now=now,
                               text=schemas.Note(text=form.get("text", "")).text)
    elif verb == "action":
        data = schemas.ActionIn(description=form.get("description", ""), owner_person_id=_opt(form, "owner_person_id"),
                                due_date=_opt(form, "due_date"))  # type: ignore[arg-type]
        await actions.add_action(uow, deps, ticket_id=ticket_id, actor=actor, data=data, now=now)
    elif verb == "resolve":
        r = schemas.Resolve(reason=form.get("reason", ""), note=_opt(form, "note"))  # type: ignore[arg-type]
        t = await store.get_ticket(uow, ticket_id, lock=True)
        await tickets.resolve(uow, deps, ticket=t, actor=actor, reason=r.reason, now=now, text=r.note)
    elif verb == "assign":
        p = await _person(uow, _opt(form, "person_id"), "person_id")
        to = schemas.Assign(assignee=schemas.PersonIn(person_id=p.person_id, name=p.name), reason=form.get("reason", ""))
        await tickets.assign(uow, deps, ticket_id=ticket_id, actor=actor, data=to, now=now)
    elif verb == "severity":
        s = schemas.SeverityChange(severity=form.get("severity", ""), reason=form.get("reason", ""))  # type: ignore[arg-type]
        await tickets.change_severity(uow, deps, ticket_id=ticket_id, actor=actor, severity=s.severity, reason=s.reason,
                                      now=now)
    elif verb == "mute":
        until = _local_time(_opt(form, "until"), deps.calendar.tz, "until")
        if until is None:
            raise Invalid("say until when escalation is muted", field="until")
        m = schemas.MuteIn(until=until, reason=form.get("reason", ""))
        await mutes.mute_ticket(uow, ticket_id=ticket_id, actor=actor, data=m, now=now)
    elif verb == "promote":
        owner = await _person(uow, _opt(form, "owner_person_id"), "owner_person_id")
        data_p = schemas.Promote(owner=owner.name, goal=form.get("goal", ""), due_date=_opt(form, "due_date"))  # type: ignore[arg-type]
        await projects.promote(uow, ticket_id=ticket_id, actor=actor, data=data_p, now=now)


FIELD_WORDS = {"text": "the note", "description": "what will be done", "due_date": "the due date", "reason": "the reason",
               "severity": "the severity", "until": "the time", "goal": "the goal", "note": "the note"}


def _words(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{FIELD_WORDS.get(field, field.replace('_', ' '))}: {e.get('msg', 'invalid').removeprefix('Value error, ')}")
    return "Please check " + "; ".join(parts) + "."


@router.post("/board/tickets/{ticket_id}/{verb}", response_class=HTMLResponse)
async def act(ticket_id: str, verb: str, request: Request, uow: UoW, deps: EscalationDeps,
              person: page_people.Viewer) -> Response:
    from escalation.board import ticket_page

    if verb not in FORMS:
        raise Invalid(f"nothing called {verb!r} can be done to a ticket", field="verb")
    if person is None:
        return HTMLResponse("<!doctype html><html lang='en'><head><title>Sign-in needed</title></head><body><main>"
                            "<h1>Sign-in needed</h1><p>Acting on tickets from these pages needs the city's sign-in, "
                            "which this service does not have.</p></main></body></html>", status_code=403)
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    principal = await page_people.viewer_principal(request, person)
    assert principal is not None
    t = await store.get_ticket(uow, ticket_id)
    try:
        actor = await access.may_act(uow, principal, t, FORMS[verb][0])
    except access.Forbidden as exc:
        return await ticket_page(request, uow, deps, person, ticket_id, error=exc.detail, status_code=403)
    run: Callable[[], Awaitable[None]] = lambda: _act(uow, deps, verb=verb, ticket_id=ticket_id,  # noqa: E731
                                                      actor=actor, form=form, now=deps.now())
    try:
        await run()
        await uow.commit()
    except ValidationError as exc:
        await uow.session.rollback()
        return await ticket_page(request, uow, deps, person, ticket_id, error=_words(exc), status_code=422)
    except DomainError as exc:
        await uow.session.rollback()
        return await ticket_page(request, uow, deps, person, ticket_id, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"/board/tickets/{ticket_id}#timeline", status_code=303)
