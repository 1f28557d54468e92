"""The baseline for the intake benchmark: a bare FastAPI app that reads the same Open311 form body
the service reads (``application/x-www-form-urlencoded``, parsed with ``parse_qsl`` as intake311's
``body_params`` does) and returns a constant. No database, no middleware, no outbox."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response

CONSTANT = b'[{"service_request_id":"1","service_notice":null,"account_id":null}]'


def create_app() -> FastAPI:
    app = FastAPI(title="bench bare baseline")

    @app.post("/requests.json", status_code=201)
    async def post_request(request: Request) -> Response:
        raw = await request.body()
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
        if not params:
            return Response(b'[{"code":400,"description":"empty"}]', status_code=400, media_type="application/json")
        return Response(CONSTANT, status_code=201, media_type="application/json")

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def create_naive_app() -> FastAPI:
    """The issue's reference point: a naive FastAPI endpoint that parses the same form and inserts
    one request row and one outbox row in a transaction (SQLAlchemy async session, the shared
    engine settings), nothing else. Database from BENCH_NAIVE_DATABASE_URL."""
    import os
    import uuid
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import orjson
    import sqlalchemy as sa

    from citystat_common.db import create_engine, session_factory, utcnow

    url = os.environ["BENCH_NAIVE_DATABASE_URL"]
    meta = sa.MetaData()
    requests = sa.Table(
        "naive_requests", meta, sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("service_code", sa.String(40)), sa.Column("lat", sa.Float), sa.Column("long", sa.Float),
        sa.Column("description", sa.Text), sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    outbox = sa.Table(
        "naive_outbox", meta, sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("event_id", sa.String(36)), sa.Column("payload", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
        state["sessions"] = session_factory(engine)
        yield
        await engine.dispose()

    app = FastAPI(title="bench naive reference", lifespan=lifespan)

    @app.post("/requests.json", status_code=201)
    async def post_request(request: Request) -> Response:
        raw = await request.body()
        p = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=2000))
        now = utcnow()
        async with state["sessions"]() as s:  # type: ignore[operator]
            rid = (await s.execute(sa.insert(requests).values(
                service_code=p.get("service_code"), lat=float(p.get("lat", 0)), long=float(p.get("long", 0)),
                description=p.get("description"), created_at=now).returning(requests.c.id))).scalar_one()
            await s.execute(sa.insert(outbox).values(event_id=str(uuid.uuid4()), payload=orjson.dumps({"id": rid, **p}),
                                                     created_at=now))
            await s.commit()
        return Response(orjson.dumps([{"service_request_id": str(rid)}]), status_code=201, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app
