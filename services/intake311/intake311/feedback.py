"""Customer feedback belongs to the reporter: the POST that creates a request returns a feedback
token once (only its SHA-256 is stored), and rating the request needs it. A key with write rights
alone could rate any request, which made the satisfaction indicator anyone's to set."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.errors import Conflict, DomainError, NotFound
from citystat_common.events import RequestFeedback
from citystat_common.uow import UnitOfWork
from intake311.models import Feedback, ServiceRequest


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_feedback_token() -> tuple[str, str]:
    """(the token for the reporter, its digest for the row)."""
    token = secrets.token_urlsafe(24)
    return token, token_digest(token)


class WrongToken(DomainError):
    """403: the key may give feedback, but not on this request."""

    status = 403
    title = "Forbidden"


async def add_feedback(uow: UnitOfWork, *, rid: int, token: str, score: int, comment: str | None,
                       author: str) -> Feedback:
    req = (await uow.session.execute(
        sa.select(ServiceRequest).where(ServiceRequest.id == rid, ServiceRequest.pending.is_(False))
    )).scalar_one_or_none()
    if req is None:
        raise NotFound(f"no service request {rid}", field="service_request_id")
    # compared as digests in constant time; a request made before tokens existed has none to match
    if not req.feedback_token_hash or not hmac.compare_digest(req.feedback_token_hash, token_digest(token)):
        raise WrongToken("the feedback token is not this request's: feedback is the reporter's, with the "
                         "token its POST returned", field="feedback_token")
    if req.status != "closed":
        raise Conflict("feedback is taken after the request is closed", field="status")
    if await uow.session.get(Feedback, req.id) is not None:
        raise Conflict("feedback for this request was already given", field="service_request_id")
    now = utcnow()
    fb = Feedback(request_id=req.id, score=score, comment=comment, submitted_at=now, submitted_by=author,
                  department_code=req.department_code)
    uow.session.add(fb)
    uow.emit(
        RequestFeedback(
            service_request_id=str(req.id), service_code=req.service_code, department_code=req.department_code,
            score=score, comment=comment, submitted_at=now, closed_datetime=req.closed_datetime,
        ),
        subject=str(req.id),
    )
    return fb
