"""Indicator registration helpers shared by the bulk and evaluation benchmarks: one template
indicator through the API, then bulk SQL clones of it (and of its targets) on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import BenchStack, Databases, asyncpg_dsn
from citystat_common.localbroker import LocalBroker
from citystat_common.migrate import upgrade
from citystat_common.testing import TEST_KEYS

ANALYST = {"X-API-Key": TEST_KEYS["analyst"]}


async def _seed_department(url: str, code: str, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(
            "INSERT INTO departments (code, department_id, name, cluster_code, cluster_name, active, updated_at) "
            "VALUES ($1, NULL, $2, 'OPERATIONS', 'Operations', true, now()) ON CONFLICT DO NOTHING", code, name)
    finally:
        await conn.close()


def seed_department(url: str, code: str = "STREETS", name: str = "Streets Department") -> None:
    """The indicators service's local copy of a directory department, so no directory is needed."""
    asyncio.run(_seed_department(url, code, name))


def create_template(base: str, code: str, *, frequency: str, targets: list[dict[str, Any]],
                    department: str = "STREETS", **extra: Any) -> dict[str, Any]:
    body = {"code": code, "name": f"Benchmark {code}", "department_code": department, "unit": "count",
            "kind": "output", "direction": "up", "frequency": frequency, "description": "benchmark template"} | extra
    r = httpx.post(f"{base}/indicators", json=body, headers=ANALYST, timeout=30)
    if r.status_code != 201:
        raise RuntimeError(f"POST /indicators answered {r.status_code}: {r.text[:500]}")
    doc = r.json()
    if targets:
        t = httpx.put(f"{base}/indicators/{code}/targets", json={"targets": targets}, headers=ANALYST, timeout=30)
        if t.status_code != 200:
            raise RuntimeError(f"PUT targets answered {t.status_code}: {t.text[:500]}")
    return doc


async def copy_rows(conn: asyncpg.Connection, table: str, template_code: str, prefix: str, first: int,
                    last: int) -> None:
    """The template's rows of ``table`` (keyed by indicator_id), copied onto each clone
    ``<prefix>{first:07d}``..``<prefix>{last:07d}``."""
    cols = [r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position", table)]
    exprs = ["n.id" if c == "indicator_id" else f'o."{c}"' for c in cols]
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
        f"FROM indicators n JOIN indicators tpl ON tpl.code = $1 JOIN {table} o ON o.indicator_id = tpl.id "
        f"WHERE n.code LIKE '{prefix}%' AND n.code >= $2 AND n.code <= $3",
        template_code, f"{prefix}{first:07d}", f"{prefix}{last:07d}")


async def _clone(url: str, template_code: str, prefix: str, first: int, last: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        cols = [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'indicators' ORDER BY ordinal_position")]
        exprs = []
        for c in cols:
            if c == "id":
                exprs.append("gen_random_uuid()::text")
            elif c == "code":
                exprs.append(f"'{prefix}' || lpad(g::text, 7, '0')")
            elif c == "name":
                exprs.append(f"'Benchmark {prefix}' || g")
            else:
                exprs.append(f'i."{c}"')
        col_list = ", ".join(f'"{c}"' for c in cols)
        await conn.execute(
            f"INSERT INTO indicators ({col_list}) SELECT {', '.join(exprs)} "
            f"FROM indicators i, generate_series($1::int, $2::int) g WHERE i.code = $3", first, last, template_code)
        await copy_rows(conn, "targets", template_code, prefix, first, last)
        await conn.execute("ANALYZE indicators")
        await conn.execute("ANALYZE targets")
    finally:
        await conn.close()


@contextmanager
def indicators_service(dbs: Databases, broker: LocalBroker, folder: Path, name: str,
                       departments: Sequence[tuple[str, str]] = (("STREETS", "Streets Department"),),
                       ) -> Iterator[tuple[str, str]]:
    """The indicators service, without a rate limit, on a new migrated PostgreSQL database ``name``
    that holds ``departments``, until the block ends; yields (database url, service base url)."""
    url = dbs.pg(name)
    upgrade("indicators", url)
    for code, title in departments:
        seed_department(url, code, title)
    stack = BenchStack(folder / name, {"indicators": url}, broker, extra_env={"INDICATORS_RATE_LIMIT_PER_MINUTE": "0"})
    try:
        stack.start("indicators")
        stack.wait_healthy()
        yield url, stack.url("indicators")
    finally:
        stack.stop_all()


def clone_indicators(url: str, template_code: str, prefix: str, first: int, last: int) -> list[str]:
    """Registers clones ``<prefix>0000001``.. of the template (same settings and targets) with bulk SQL."""
    asyncio.run(_clone(url, template_code, prefix, first, last))
    return [f"{prefix}{i:07d}" for i in range(first, last + 1)]
