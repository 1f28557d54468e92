"""Staff judgement from the drill-down page: set or clear an override through a plain HTML form.

The form is shown only to a signed-in person who may judge the indicator (``people.may_judge``);
every post carries the session's CSRF token and is checked again on arrival, so a forged post
gets a 403 page with the reason. Errors come back in words above the form (kept in the session,
never echoed from the address), and success redirects back to the drill-down (post/redirect/get).
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citystat_common.auth import OptionalPrincipal, Principal
from citystat_common.db import utcnow
from citystat_common.errors import DomainError
from citystat_common.signin import check_csrf, csrf_token
from citystat_common.web import UoW
from indicators import schemas, service
from indicators.config import Settings
from indicators.deps import Deps
from indicators.models import Indicator, Override
from indicators.people import by, may_judge
from indicators.periods import local_date, local_midnight

router = APIRouter(tags=["dashboard"], include_in_schema=False)
FLASH = "indicators.flash"
FIELD_NAMES = {"status": "Status", "reason": "Reason", "expires_at": "Until"}


def _refused(title: str, why: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(why)}</p>"
        "<p><a href=\"/dashboard\">Back to the dashboard</a></p></main></body></html>", status_code=403)


def _judge(principal: Principal | None) -> Principal | None:
    """Only a person signed in to the pages gets a form (a key or a token uses the API)."""
    return principal if principal is not None and principal.via == "session" else None


def _flash(request: Request) -> str | None:
    return request.session.pop(FLASH, None) if "session" in request.scope else None


def override_section(request: Request, principal: Principal | None, ind: Indicator, override: Override | None,
                     settings: Settings) -> str:
    """The judgement form on the drill-down, or nothing for a reader who may not judge."""
    judge = _judge(principal)
    if judge is None or may_judge(judge, ind.department_code) is not None:
        return ""
    token = escape(csrf_token(request))
    flash = _flash(request)
    today = local_date(utcnow(), service.tz_of(settings))
    default_until = today + timedelta(days=30)
    action = f"/dashboard/indicators/{escape(ind.code)}/override"
    parts = ['<section aria-labelledby="judge-h" class="noprint"><h2 id="judge-h">Staff judgement</h2>']
    if flash:
        parts.append(f'<p role="alert" id="judge-error" style="color:#b3261e;font-weight:700">{escape(flash)}</p>')
    options = "".join(f'<option value="{s}">{label}</option>'
                      for s, label in (("red", "Red"), ("yellow", "Yellow"), ("green", "Green")))
    parts.append(
        f'<form method="post" action="{action}" id="override-form"><input type="hidden" name="csrf" value="{token}">'
        '<p><label for="ov-status">Set the status to</label> '
        f'<select id="ov-status" name="status" required>{options}</select></p>'
        '<p><label for="ov-reason">Reason (what the numbers do not show)</label><br>'
        '<textarea id="ov-reason" name="reason" rows="3" cols="60" required minlength="5" maxlength="2000">'
        '</textarea></p>'
        '<p><label for="ov-until">Until (the end of this day, city time)</label> '
        f'<input id="ov-until" type="date" name="until" required min="{today.isoformat()}" '
        f'value="{default_until.isoformat()}"></p>'
        '<p><button type="submit">Set override</button></p></form>')
    if override is not None:
        parts.append(
            f'<form method="post" action="{action}/clear" id="clear-form">'
            f'<input type="hidden" name="csrf" value="{token}">'
            '<p><label for="ov-clear-reason">Why the override ends</label><br>'
            '<input id="ov-clear-reason" name="reason" size="60" maxlength="500" required></p>'
            '<p><button type="submit">Clear override</button></p></form>')
    parts.append("</section>")
    return "".join(parts)


async def _permitted(request: Request, principal: Principal | None, ind: Indicator, csrf: str) -> HTMLResponse | None:
    try:
        check_csrf(request, csrf)
    except HTTPException as exc:
        return _refused("This form has expired", str(exc.detail))
    why = may_judge(_judge(principal), ind.department_code)
    return _refused("You may not change this status", why) if why else None


def _back(request: Request, ind: Indicator, error: str | None = None) -> RedirectResponse:
    if error:
        request.session[FLASH] = error
    return RedirectResponse(f"/dashboard/indicators/{ind.code}#judge-h" if error else
                            f"/dashboard/indicators/{ind.code}#history", status_code=303)


def _words(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = FIELD_NAMES.get(str(first["loc"][0]) if first["loc"] else "", "The form")
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{name}: {msg}"


@router.post("/dashboard/indicators/{code}/override")
async def set_override_from_page(
    code: str, request: Request, uow: UoW, deps: Deps, principal: OptionalPrincipal,
    csrf: Annotated[str, Form()] = "", status: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "", until: Annotated[str, Form()] = "",
) -> Response:
    settings = deps.settings
    ind = await service.get_indicator(uow, code)
    if (refusal := await _permitted(request, principal, ind, csrf)) is not None:
        return refusal
    assert principal is not None  # _permitted refused anyone else
    try:
        day = date.fromisoformat(until)
    except ValueError:
        return _back(request, ind, "Until: give the last day of the override, e.g. "
                     f"{(local_date(utcnow(), service.tz_of(settings)) + timedelta(days=30)).isoformat()}")
    expires = local_midnight(day + timedelta(days=1), service.tz_of(settings))
    try:
        data = schemas.OverrideIn(status=status, reason=reason, expires_at=expires)  # type: ignore[arg-type]
        await service.set_override(uow, deps, actor=by(principal), ind=ind, data=data, by=principal.actor())
    except ValidationError as exc:
        return _back(request, ind, _words(exc))
    except DomainError as exc:
        return _back(request, ind, exc.detail)
    await uow.commit()
    return _back(request, ind)


@router.post("/dashboard/indicators/{code}/override/clear")
async def clear_override_from_page(
    code: str, request: Request, uow: UoW, deps: Deps, principal: OptionalPrincipal,
    csrf: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
) -> Response:
    ind = await service.get_indicator(uow, code)
    if (refusal := await _permitted(request, principal, ind, csrf)) is not None:
        return refusal
    assert principal is not None
    reason = reason.strip()[:500]
    if not reason:
        return _back(request, ind, "Why the override ends: write a few words for the record")
    try:
        await service.clear_override(uow, deps, actor=by(principal), ind=ind,
                                     reason=reason, by=principal.actor())
    except DomainError as exc:
        return _back(request, ind, exc.detail)
    await uow.commit()
    return _back(request, ind)
