"""Planner statistics for tables that grow fast from small (PostgreSQL).

Autovacuum analyzes a table once 50 rows + 10% of it have changed, looking at each database once
per ``autovacuum_naptime`` (a minute by default, spread over all the server's databases). A new
city's ``service_requests`` grows from nothing to tens of thousands of rows in the first minutes of
a storm, and until it is analyzed with rows in it the planner has no column statistics:
intake's duplicate lookup then scanned the whole table for every draft of every batch (a core of
PostgreSQL, 300 requests/s instead of 1,800; docs/performance.md, session 13). The keeper looks
every few seconds and ANALYZEs a table whose changes since its last analysis reach a fifth of it
(and at least ``min_changes``): often while it is young, never once it is large, where
autovacuum's own 10% comes first."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common.logging import get_logger

log = get_logger(__name__)

_CHANGES = sa.text("""
SELECT relname, n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname = ANY(CAST(:tables AS TEXT[]))
""")


def due(live: int, changed: int, *, min_changes: int, share: float) -> bool:
    """Whether a table with ``live`` rows and ``changed`` changes since its analysis needs one now."""
    return changed >= min_changes and changed >= share * live


class StatisticsKeeper:
    def __init__(self, engine: AsyncEngine, tables: list[str], *, min_changes: int = 500, share: float = 0.2):
        self.engine, self.tables, self.min_changes, self.share = engine, tables, min_changes, share

    async def step(self) -> list[str]:
        """ANALYZE what is due (PostgreSQL; nothing elsewhere); returns the tables analyzed."""
        if self.engine.dialect.name != "postgresql":
            return []
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_CHANGES, {"tables": self.tables})).all()
            done = []
            for name, live, changed in rows:
                if due(int(live or 0), int(changed or 0), min_changes=self.min_changes, share=self.share):
                    await conn.exec_driver_sql(f'ANALYZE "{name}"')
                    done.append(name)
                    log.info("table_analyzed", table=name, rows=int(live or 0), changed=int(changed or 0))
            await conn.commit()
        return done
