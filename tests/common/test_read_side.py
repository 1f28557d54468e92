"""The read-side plumbing every service uses: paginate over any select (joins give rows), a
creation run once per Idempotency-Key, and rows read from a JSON or CSV body."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from starlette.requests import Request

from citystat_common.bodies import RowsBody, read_rows
from citystat_common.db import create_engine, session_factory
from citystat_common.errors import Conflict
from citystat_common.idempotency import create_once
from citystat_common.pagination import PageParams, page_of, paginate
from citystat_common.uow import UnitOfWork
from directory.models import PLUMBING, Cluster, Department

# --- bodies (no I/O) -------------------------------------------------------------------------

SPEC = RowsBody(key="rows", header="code,name", required=frozenset({"code", "name"}))


def test_json_rows_bare_or_under_the_key() -> None:
    assert read_rows(b'[{"code": "A"}]', "application/json", SPEC) == ([{"code": "A"}], None)
    assert read_rows(b'{"rows": [{"code": "A"}]}', "application/json; charset=utf-8", SPEC) == ([{"code": "A"}], None)
    assert read_rows(b'[{"code": "A"}]', None, SPEC) == ([{"code": "A"}], None)  # no content type: JSON


def test_csv_rows_with_or_without_blank_cells() -> None:
    body = "\ufeffcode,name,\nA,,x\n".encode()
    assert read_rows(body, "text/csv", SPEC) == ([{"code": "A", "name": "", "": "x"}], None)
    blank = RowsBody(key="rows", header="code,name", blank_is_none=True)
    assert read_rows(body, "text/csv", blank) == ([{"code": "A", "name": None}], None)


@pytest.mark.parametrize(("raw", "ctype", "field", "message"), [
    (b"\xff\xfe", "text/csv", "body", "CSV must be UTF-8"),
    (b"", "text/csv", "body", "expected the CSV header code,name"),
    (b"code\nA\n", "text/csv", "body", "expected the CSV header code,name"),  # a required column missing
    (b"{", "application/json", "body", "not JSON: "),
    (b'{"other": []}', "application/json", "body", 'expected a list or {"rows": [...]}'),
    (b"<rows/>", "application/xml", "content-type", "send application/json or text/csv"),
])
def test_a_body_that_is_not_rows_is_one_error(raw: bytes, ctype: str, field: str, message: str) -> None:
    rows, error = read_rows(raw, ctype, SPEC)
    assert rows == [] and error is not None
    assert error["row"] == 0 and error["field"] == field and error["message"].startswith(message)


def test_an_empty_list_is_refused_only_where_the_endpoint_says() -> None:
    assert read_rows(b"[]", "application/json", SPEC) == ([], None)
    strict = RowsBody(key="rows", header="code", empty="no rows")
    assert read_rows(b"[]", "application/json", strict) == ([], {"row": 0, "field": "body", "message": "no rows"})


# --- paginate and create_once (both databases) -----------------------------------------------


@pytest.fixture
async def uow_factory(db_factory):
    engine = create_engine(db_factory("directory"))
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions, PLUMBING)
    await engine.dispose()


async def _seed(uow: UnitOfWork) -> None:
    north = Cluster(code="NORTH", name="North")
    uow.session.add(north)
    await uow.flush()
    for i in range(7):
        uow.session.add(Department(code=f"D{i}", name=f"Department {i}", cluster_id=north.id if i % 2 else None))
    await uow.commit()


async def test_paginate_gives_entities_of_one_and_rows_of_a_join(uow_factory) -> None:
    async with uow_factory() as uow:
        await _seed(uow)
    async with uow_factory() as uow:
        one = sa.select(Department).order_by(Department.code)
        items, total = await paginate(uow.session, one, PageParams(page=2, page_size=3))
        assert total == 7 and [d.code for d in items] == ["D3", "D4", "D5"]
        joined = (sa.select(Department, Cluster.code).outerjoin(Cluster, Department.cluster_id == Cluster.id)
                  .where(Department.code != "D0").order_by(Department.code))
        rows, total = await paginate(uow.session, joined, PageParams(page=3, page_size=2))
        assert total == 6 and [(d.code, c) for d, c in rows] == [("D5", "NORTH"), ("D6", None)]
        codes, total = await paginate(uow.session, sa.select(Department.code).order_by(Department.code.desc()),
                                      PageParams(page=1, page_size=2))
        assert (codes, total) == (["D6", "D5"], 7)
        page = page_of(codes, total, PageParams(page=1, page_size=2))
        assert (page.items, page.total, page.page, page.page_size) == (["D6", "D5"], 7, 1, 2)


class Made(BaseModel):
    code: str


def _request(body: bytes) -> Request:
    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/clusters", "headers": []}, receive)


async def test_create_once_per_key(uow_factory) -> None:
    made: list[str] = []

    async def create(uow: UnitOfWork, code: str, key: str | None, body: bytes):  # noqa: ANN202
        async def build() -> Made:
            uow.session.add(Cluster(code=code, name=code))
            await uow.flush()
            made.append(code)
            return Made(code=code)

        return await create_once(uow, _request(body), key=key, scope="clusters", build=build)

    async with uow_factory() as uow:
        first = await create(uow, "EAST", "k1", b'{"code": "EAST"}')
    assert first.status_code == 201 and orjson.loads(first.body) == {"code": "EAST"}
    async with uow_factory() as uow:
        again = await create(uow, "EAST", "k1", b'{"code": "EAST"}')
    assert again.status_code == 201 and again.body == first.body and again.headers["Idempotent-Replay"] == "true"
    assert made == ["EAST"]  # the replay built nothing
    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await create(uow, "WEST", "k1", b'{"code": "WEST"}')
    async with uow_factory() as uow:
        await create(uow, "SOUTH", None, b'{"code": "SOUTH"}')  # no key: an ordinary creation
        count = (await uow.session.execute(sa.select(sa.func.count()).select_from(Cluster))).scalar_one()
    assert made == ["EAST", "SOUTH"] and count == 2
