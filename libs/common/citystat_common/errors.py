"""RFC 9457 problem details for every non-Open311 API, with field-level validation errors.

Domain code raises the ``DomainError`` family; handlers here turn them, validation
errors, integrity errors and a lost database into problem documents. Never a bare 500
for client input: what is left for 500 is a bug, logged with its correlation id.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citystat_common.logging import current_correlation_id, get_logger
from citystat_common.outage import is_database_down

__all__ = ["is_database_down"]  # re-exported: the Open311 routes import it from here

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class DomainError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or ([{"field": field, "message": detail}] if field else [])


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Invalid(DomainError):
    status = 422
    title = "Validation failed"


class Unavailable(DomainError):
    status = 503
    title = "Service unavailable"


def problem(
    status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    cid = current_correlation_id()
    if cid:
        body["correlation_id"] = cid
    body.update(extra)
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"field": _loc_to_field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Validation failed", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        resp = problem(exc.status_code, _title(exc.status_code), str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(sa_exc.IntegrityError)
    async def _integrity(_: Request, exc: sa_exc.IntegrityError) -> JSONResponse:
        log.warning("integrity_error", error=str(exc.orig))
        return problem(409, "Conflict", "the change conflicts with existing data (a duplicate or a missing reference)")

    async def _maybe_down(_: Request, exc: Exception) -> JSONResponse:
        if is_database_down(exc):
            log.error("database_unavailable", error=str(exc)[:500])
            return problem(503, "Service unavailable", "the database is unreachable; retry shortly")
        log.exception("unhandled_error", exc_info=exc)
        return problem(500, "Internal error", "an unexpected error; it has been logged")

    # The database errors are registered by class, not only as the catch-all Exception, so they are
    # answered without the re-raise Starlette does for the catch-all.
    # asyncpg's own errors arrive raw when a connect fails before SQLAlchemy can wrap them.
    db_errors = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError, OSError, asyncpg.PostgresError,
                 asyncpg.InterfaceError, ExceptionGroup)
    for exc_class in (*db_errors, Exception):
        app.add_exception_handler(exc_class, _maybe_down)  # type: ignore[arg-type]


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
