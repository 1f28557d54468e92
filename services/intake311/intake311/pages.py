"""Pages for 311 staff, server-rendered (no JavaScript needed): the call-taker's page, which files a
request from the catalog's service definition, and a department's queue, where its staff
acknowledge, start, close, transfer and note their requests. Signed in through the city's provider
when the service is set up for it (``settings.pages_sign_in``); an API key or bearer token works too
(scripts, tests). Every form carries the session's CSRF token; each action posts, then redirects back."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from citystat_common.auth import Principal, can_see_personal_data, optional_principal
from citystat_common.db import utcnow
from citystat_common.errors import DomainError, Invalid
from citystat_common.logging import current_correlation_id
from citystat_common.signin import SignInRequired, check_csrf, csrf_token
from citystat_common.web import ReadUoW, UoW
from intake311 import actors, call_form, lifecycle, metrics, permissions, queue, service
from intake311.api import resolve_department
from intake311.config import Settings
from intake311.deps import get_deps, get_front_door
from intake311.intake import NewRequestItem
from intake311.models import ServiceRequest, StatusNote

router = APIRouter(include_in_schema=False)
STAFF_CHANNEL = "phone"  # what the call-taker's page files as: the caller is on the phone
STATUS_WORDS = {"open": "Open", "acknowledged": "Acknowledged", "in_progress": "Work in progress", "closed": "Closed"}
CLOSURE_WORDS = {"fixed": "Fixed", "duplicate": "A duplicate", "not_city_responsibility": "Not the city's responsibility",
                 "no_further_action": "No further action", "referred": "Referred elsewhere", "other": "Other"}
DONE_WORDS = {"acknowledge": "acknowledged", "start": "marked as work in progress", "close": "closed",
              "transfer": "transferred", "note": "noted"}
SCOPE_WORDS = {"311:submit": "staff who file 311 requests", "311:write": "311 staff who work a department's requests"}
FILTERS = ("status", "service_code", "department", "page")
_env: Environment | None = None


class PageRefused(Exception):
    def __init__(self, status: int, title: str, reason: str):
        self.status, self.title, self.reason = status, title, reason


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=PackageLoader("intake311", "templates"), autoescape=select_autoescape(["html"]))
    return _env


def _settings(request: Request) -> Settings:
    return get_deps(request).settings


def _has_session(request: Request) -> bool:
    return "session" in request.scope


def render(request: Request, template: str, who: Principal | None, status: int = 200, **context: Any) -> HTMLResponse:
    signed_in = who is not None and who.via == "session"
    body = env().get_template(template).render(
        who=who.actor().label if who else None, signout_csrf=csrf_token(request) if signed_in else None,
        csrf=csrf_token(request) if _has_session(request) else "", **context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def caller(request: Request, scope: str) -> Principal:
    """Who is at the page: signed in (or a key or bearer token), with ``scope``, else a refusal page."""
    who = await optional_principal(request)
    if who is None:
        if _settings(request).pages_sign_in:
            raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise PageRefused(401, "Sign-in needed", "These pages are for city staff, and sign-in through the city's "
                          "identity provider is not set up on this service. Ask the IT service desk.")
    if not who.has(scope):
        raise PageRefused(403, "Not permitted", f"{'You' if who.is_person else 'This key'} may not use this page: it "
                          f"is for {SCOPE_WORDS.get(scope, '311 staff')}.")
    return who


def check_form(request: Request, who: Principal, form: Mapping[str, Any]) -> None:
    """A browser's session sends its cookie by itself: its forms must carry the session's token."""
    if who.via != "session":
        return  # a key or a bearer token is sent on purpose, never by a browser on its own
    try:
        check_csrf(request, str(form.get("csrf") or ""))
    except HTTPException as exc:
        raise PageRefused(403, "The form has expired", str(exc.detail)) from exc


def install_pages(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> Response:
        who = None
        try:
            who = await optional_principal(request)
        except HTTPException:
            pass
        return render(request, "refused.html", who, status=exc.status, title=exc.title, reason=exc.reason, page=None)


def _when(request: Request) -> Any:
    tz = ZoneInfo(_settings(request).city_timezone)

    def when(dt: datetime | None) -> str:
        if dt is None:
            return ""
        local = dt.astimezone(tz)
        return f"{local.strftime('%a %b')} {local.day}, {local.strftime('%I:%M %p').lstrip('0')}"

    return when


# --- the call-taker's page --------------------------------------------------------------------------


async def _service_groups(uow: UoW) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for s in await service.list_services(uow):
        groups.setdefault(s.group_name or "Other", []).append((s.service_code, s.service_name))
    return sorted(groups.items())


async def _call_page(request: Request, uow: UoW, who: Principal, *, code: str | None, status: int = 200,
                     form: Mapping[str, list[str]] | None = None, errors: Mapping[str, str] | None = None,
                     filed: dict[str, Any] | None = None) -> HTMLResponse:
    entry = await get_front_door(request).catalog.get(code) if code else None
    errors = errors or {}
    return render(
        request, "call.html", who, status=status, page="call", title="Take a call", groups=await _service_groups(uow),
        entry=entry, unknown=f"There is no service “{code}” in the catalog: choose one from the list." if code and not entry else None,
        promise=call_form.promise_text(entry) if entry else "",
        fields=call_form.fields_for(entry, form, errors) if entry else [], general_error=errors.get(""),
        has_errors=bool(errors), filed=filed,
    )


@router.get("/staff/call", response_class=HTMLResponse)
async def call_page(request: Request, uow: ReadUoW, service_code: str | None = None, filed: str | None = None) -> HTMLResponse:
    who = await caller(request, "311:submit")
    done = None
    rid = service.request_id(filed) if filed else None
    req = await uow.session.get(ServiceRequest, rid) if rid is not None else None
    if req is not None:
        # a batch service's request is reviewed before it is numbered: the caller follows it by its token
        done = {"number": req.id, "notice": req.service_notice, "token": req.token if req.pending else None}
    return await _call_page(request, uow, who, code=service_code, filed=done)


@router.post("/staff/call", response_class=HTMLResponse)
async def file_call(request: Request, uow: UoW) -> Response:
    who = await caller(request, "311:submit")
    raw = await request.form()
    check_form(request, who, raw)
    form: dict[str, list[str]] = {}
    for key, value in raw.multi_items():
        if isinstance(value, str):
            form.setdefault(key, []).append(value)
    code = (form.get("service_code") or [""])[0]
    front = get_front_door(request)
    entry = await front.catalog.get(code) if code else None
    if entry is None:
        return await _call_page(request, uow, who, code=code or None, status=422)
    data, errors = call_form.validate(entry, form, ZoneInfo(_settings(request).city_timezone))
    if data is None:
        return await _call_page(request, uow, who, code=code, status=422, form=form, errors=errors)
    draft = service.RequestDraft(data=data, service=entry, channel=STAFF_CHANNEL, author=who.name, actor=who.actor(),
                                 correlation_id=current_correlation_id())
    created = await front.intake.submit(NewRequestItem(draft=draft))
    metrics.REQUESTS_CREATED.labels(entry.service_code, STAFF_CHANNEL, entry.department_code).inc()
    return RedirectResponse(f"/staff/call?{urlencode({'filed': created.id})}#filed", status_code=303)


# --- a department's queue ---------------------------------------------------------------------------


def _filters(values: Mapping[str, str]) -> dict[str, str]:
    return {k: values[k] for k in FILTERS if values.get(k)}


def _hidden(csrf: str, back: str) -> Any:
    def hidden() -> Markup:
        return Markup(f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
                      f'<input type="hidden" name="back" value="{html.escape(back)}">')
    return hidden


def _line(n: StatusNote) -> str:
    return actors.history_line(n.kind, n.author, n.author_kind)


async def _queue_page(request: Request, uow: UoW, who: Principal, filters: dict[str, str], *, status: int = 200,
                      done: str | None = None, error: dict[str, Any] | None = None) -> HTMLResponse:
    departments = await queue.active_departments(uow)
    mine = permissions.visible_departments(who, [code for code, _ in departments])
    if mine is not None and not mine:
        raise PageRefused(403, "No department queue", "You are in no department, so you have no department queue: "
                          "a department's 311 staff work its queue, the 311 contact center works every queue. Ask for "
                          "your department to be added to your sign-in.")
    names = dict(departments)
    wanted = filters.get("department", "")  # the city's code, looked up exactly (citystat_common.codes)
    if wanted and mine is not None and wanted not in mine:
        raise PageRefused(403, "Not your department", f"{names.get(wanted, wanted)} is not one of your departments "
                          f"({', '.join(names.get(d, d) for d in sorted(mine))}): its own 311 staff work its queue.")
    shown = {wanted} if wanted else mine
    status_filter = filters.get("status") if filters.get("status") in queue.STATUSES else None
    page = int(filters["page"]) if filters.get("page", "").isdigit() else 1
    q = await queue.department_queue(uow, departments=shown, status=status_filter,
                                     service_code=filters.get("service_code") or None, page=page)
    back = urlencode(filters)
    if error is not None:  # beside its request when listed, else at the top
        error["listed"] = any(item.request.id == error["rid"] for item in q.items)
    scope_text = ("Requests of every department." if shown is None
                  else "Requests of " + ", ".join(names.get(d, d) for d in sorted(shown)) + ".")
    return render(
        request, "queue.html", who, status=status, page="queue", title="Department queue", scope_text=scope_text,
        queue=q, filters=filters, statuses=queue.STATUSES, status_words=STATUS_WORDS,
        services=await queue.services_of(uow, shown), all_departments=mine is None,
        department_choices=departments if mine is None else [(d, names.get(d, d)) for d in sorted(mine)],
        departments=departments, closure_reasons=[(r, CLOSURE_WORDS.get(r, r.replace("_", " ").capitalize()))
                                                      for r in _settings(request).closure_reasons],
        may_act=who.has("311:write"), personal=can_see_personal_data(who), when=_when(request), now=utcnow(),
        line=_line, hidden=_hidden(csrf_token(request) if _has_session(request) else "", back), done=done, error=error,
        page_link=lambda n: "/staff/queue?" + urlencode({**filters, "page": n}),
    )


@router.get("/staff/queue", response_class=HTMLResponse)
async def queue_page(request: Request, uow: ReadUoW, done: str | None = None) -> HTMLResponse:
    who = await caller(request, "311:write")
    filters = _filters(dict(request.query_params))
    message = None
    if done and ":" in done:  # "<request>:<action>", set by the redirect after an action
        rid, action = done.split(":", 1)
        if rid.isdigit() and action in DONE_WORDS:
            message = f"Request {rid} {DONE_WORDS[action]}."
    return await _queue_page(request, uow, who, filters, done=message)


@router.post("/staff/queue/{service_request_id}/{action}", response_class=HTMLResponse)
async def queue_action(request: Request, service_request_id: str, action: str, uow: UoW) -> Response:
    who = await caller(request, "311:write")
    form = await request.form()
    check_form(request, who, form)
    filters = _filters(dict(parse_qsl(str(form.get("back") or ""))))
    rid = service.request_id(service_request_id)
    text = str(form.get("text") or "").strip() or None
    try:
        if rid is None or action not in DONE_WORDS:
            raise Invalid("there is no such request or action; reload the queue", field="action")
        kw: dict[str, Any] = {}
        if action == "close":
            if not text:
                raise Invalid("write a closing note: the caller reads it", field="text")
            kw["reason"] = str(form.get("reason") or "")
        elif action == "transfer":
            if not text:
                raise Invalid("give the reason for the transfer", field="text")
            kw["department_code"] = str(form.get("department_code") or "")
            await resolve_department(request, uow, kw["department_code"])
        elif action == "note":
            if not text:
                raise Invalid("write the note first", field="text")
            kw["public"] = form.get("public") == "yes"
        await lifecycle.change(uow, get_deps(request), rid=rid, action=action, who=who, text=text, **kw)
        await uow.commit()
    except DomainError as exc:
        await uow.rollback()
        words = exc.detail[:1].upper() + exc.detail[1:]
        return await _queue_page(request, uow, who, filters, status=exc.status,
                                 error={"rid": rid, "text": words + ("" if words.endswith(".") else ".")})
    target = "/staff/queue?" + urlencode({**filters, "done": f"{rid}:{action}"})
    return RedirectResponse(f"{target}#request-{rid}", status_code=303)
