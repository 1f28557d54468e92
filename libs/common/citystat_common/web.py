"""The pieces every service's FastAPI app shares: correlation ids, metrics, problem
details, body-size limit, health and readiness. ``build_app`` is called from each
service's ``create_app`` (its composition root); nothing here runs at import time.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citystat_common.asgi import HttpMiddleware
from citystat_common.auth import KeyStore
from citystat_common.bus import broker_reachable
from citystat_common.db import PlumbingTables, create_engine, ping, session_factory, utcnow
from citystat_common.errors import install_problem_handlers, problem
from citystat_common.logging import configure_logging, correlation_id_var, new_correlation_id
from citystat_common.longpoll import MAX_WAIT_SECONDS, CommitSignal, LongPoll, wait_preference
from citystat_common.metrics import (
    DATABASE_UP,
    MetricsMiddleware,
    metrics_endpoint,
    remove_dead_process_gauges,
)
from citystat_common.people import install_people
from citystat_common.ratelimit import RateLimitMiddleware
from citystat_common.settings import ServiceSettings
from citystat_common.textguard import NulTextGuard
from citystat_common.uow import UnitOfWork


@dataclass
class ServiceContext:
    """What a request handler needs, built once in the lifespan: the composition root's output."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: PlumbingTables
    keystore: KeyStore
    extras: dict[str, Any] = field(default_factory=dict)
    _commits: CommitSignal | None = None

    def uow(self, *, single_statement: bool = False, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.tables, single_statement=single_statement, read_only=read_only)

    def commits(self) -> CommitSignal:
        """What wakes a long poll (``citystat_common.longpoll``); built at the first one that waits."""
        if self._commits is None:
            self._commits = CommitSignal(self.engine)
        return self._commits

    async def close(self) -> None:
        if self._commits is not None:
            await self._commits.close()


async def app_deps(request: Request) -> Any:
    """A service's ``Deps`` (set on ``app.state.deps`` by its lifespan), for ``Depends``: async, so
    FastAPI calls it on the loop instead of its thread pool. Each service's ``<X>Deps`` alias gives
    the type."""
    return request.app.state.deps


def get_context(request: Request) -> ServiceContext:
    return request.app.state.ctx


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_context(request).uow() as uow:
        yield uow


async def get_read_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_context(request).uow(read_only=True) as uow:
        yield uow


async def get_long_poll(
    request: Request,
    prefer: Annotated[str | None, Header(description=(
        "`wait=N` (RFC 7240) with If-None-Match: answer when the result changes, or 304 after N "
        f"seconds (at most {MAX_WAIT_SECONDS:.0f})"))] = None,
    if_none_match: Annotated[str | None, Header(description="the ETag of the result already held")] = None,
) -> LongPoll:
    return LongPoll(held=if_none_match, wait=wait_preference(prefer), signal=get_context(request).commits,
                    scope=request.scope)


Context = Annotated[ServiceContext, Depends(get_context)]
LongPollHeaders = Annotated[LongPoll, Depends(get_long_poll)]  # conditional GET and long poll (citystat_common.longpoll)
UoW = Annotated[UnitOfWork, Depends(get_uow)]
ReadUoW = Annotated[UnitOfWork, Depends(get_read_uow)]  # a route that only reads (UnitOfWork's read_only)


class CorrelationMiddleware(HttpMiddleware):
    """``X-Correlation-ID`` in (or a new one), echoed out, set for logs and emitted events."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-correlation-id", b"").decode("latin-1").strip()
        cid = raw[:128] if raw and raw.isprintable() else new_correlation_id()
        token = correlation_id_var.set(cid)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-correlation-id", cid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            correlation_id_var.reset(token)


class BodySizeLimitMiddleware(HttpMiddleware):
    """413 for bodies over the limit, by Content-Length or by counting a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await problem(413, "Content too large", f"the body exceeds {self.max_bytes} bytes")(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await problem(413, "Content too large", f"the body exceeds {self.max_bytes} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


ReadinessCheck = Callable[[ServiceContext], Awaitable[str | None]]


async def check_database(ctx: ServiceContext) -> str | None:
    try:
        await ping(ctx.engine)
    except Exception as exc:  # noqa: BLE001
        DATABASE_UP.labels(ctx.settings.service_name).set(0)
        return f"database unreachable: {type(exc).__name__}"
    DATABASE_UP.labels(ctx.settings.service_name).set(1)
    return None


async def check_broker(ctx: ServiceContext) -> str | None:
    return None if await broker_reachable(ctx.settings.kafka_bootstrap) else "broker unreachable"


def _max_age(ctx: ServiceContext, max_age: timedelta | None) -> timedelta:
    return max_age or timedelta(seconds=ctx.settings.worker_heartbeat_max_age_seconds)


def check_consumer(group_id: str, max_age: timedelta | None = None) -> ReadinessCheck:
    """Ready when some replica of the group reported, recently (a few of its 2-s reports: a worker
    down for 10 s shows), an assignment of partitions."""

    async def check(ctx: ServiceContext) -> str | None:
        max_age_ = _max_age(ctx, max_age)
        hb = ctx.tables.heartbeat
        try:
            async with ctx.engine.connect() as conn:
                rows = (await conn.execute(sa.select(hb).where(hb.c.component.like(f"consumer:{group_id}:%")))).all()
        except Exception as exc:  # noqa: BLE001
            return f"database unreachable: {type(exc).__name__}"
        fresh = [r for r in rows if utcnow() - r.updated_at <= max_age_]
        if not rows:
            return f"consumer {group_id} has not reported"
        if not fresh:
            return f"consumer {group_id} silent since {max(r.updated_at for r in rows).isoformat()}"
        if not any(r.details.get("assigned") for r in fresh):
            return f"consumer {group_id} has no partitions assigned"
        return None

    return check


async def check_relay(ctx: ServiceContext, max_age: timedelta | None = None) -> str | None:
    """Ready when the worker's outbox relay reported recently. What it reported (backlog, broker
    resets it recovered from on its own) goes into /readyz's ``relay`` detail."""
    hb = ctx.tables.heartbeat
    try:
        async with ctx.engine.connect() as conn:
            row = (await conn.execute(sa.select(hb).where(hb.c.component == "relay"))).first()
    except Exception as exc:  # noqa: BLE001
        return f"database unreachable: {type(exc).__name__}"
    if row is None:
        return "outbox relay has not reported"
    ctx.extras["readiness_relay"] = dict(row.details or {}) | {"reported_at": row.updated_at.isoformat()}
    if utcnow() - row.updated_at > _max_age(ctx, max_age):
        return f"outbox relay silent since {row.updated_at.isoformat()}"
    return None


def health_router(checks: Sequence[ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database, broker and consumers", responses={503: {}})
    async def readyz(request: Request) -> JSONResponse:
        ctx = get_context(request)
        all_checks = list(checks)
        if ctx.settings.readiness_checks_worker and check_relay not in all_checks:
            all_checks.append(check_relay)
        ctx.extras.pop("readiness_relay", None)
        problems = [p for p in [await c(ctx) for c in all_checks] if p]
        body: dict[str, Any] = {"status": "unavailable", "problems": problems} if problems else {"status": "ready"}
        if "readiness_relay" in ctx.extras:
            body["relay"] = ctx.extras["readiness_relay"]
        return JSONResponse(body, status_code=503 if problems else 200)

    return router


class HotRoute(Route):
    """A route Starlette serves directly, ahead of FastAPI's routing, for the path that carries the
    load (intake311's Open311 POST /requests). FastAPI 0.165 walks its included routers twice per
    request and solves dependencies even for a route without any: measured in-process, that was
    ~30% of what a 311 POST costs the api process. The endpoint takes the bare ``Request`` and does
    its own parsing and auth; the FastAPI route of the same path stays registered, so it is still in
    the OpenAPI document (requests never reach it: this route matches first)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self  # the metrics label, as FastAPI's router records it
        return match, child


def add_hot_route(app: FastAPI, path: str, endpoint: Callable[[Request], Awaitable[Any]], *, methods: list[str]) -> None:
    app.router.routes.insert(0, HotRoute(path, endpoint, methods=methods, include_in_schema=False))


def build_app(
    *,
    settings: ServiceSettings,
    tables: PlumbingTables,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    readiness: Sequence[ReadinessCheck] = (check_database, check_broker),
    on_startup: Callable[[ServiceContext], Awaitable[None]] | None = None,
    on_shutdown: Callable[[ServiceContext], Awaitable[None]] | None = None,
    problem_handlers: bool = True,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        engine = create_engine(settings.database_url)
        ctx = ServiceContext(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            tables=tables,
            keystore=KeyStore.from_settings(settings.api_keys_file, settings.api_keys),
        )
        app.state.ctx = ctx
        app.state.keystore = ctx.keystore
        remove_dead_process_gauges()  # of an earlier api or worker killed -9 (multiprocess folder)
        if on_startup:
            await on_startup(ctx)
        if settings.gc_freeze:
            gc.collect()
            gc.freeze()
            gen0, gen1, gen2 = gc.get_threshold()
            gc.set_threshold(max(gen0, settings.gc_gen0_threshold), gen1, gen2)
        try:
            yield
        finally:
            if on_shutdown:
                await on_shutdown(ctx)
            await ctx.close()
            await engine.dispose()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    if problem_handlers:
        install_problem_handlers(app)
    app.add_middleware(NulTextGuard)
    if settings.rate_limit_per_minute:
        app.add_middleware(
            RateLimitMiddleware, per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=settings.service_name, access_log=settings.access_log)
    app.add_middleware(CorrelationMiddleware)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(health_router(readiness))
    for router in routers:
        app.include_router(router)
    install_people(app, settings)  # bearer tokens and page sign-in, when the city's provider is configured
    return app
