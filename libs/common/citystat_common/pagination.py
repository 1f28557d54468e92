"""Offset pagination shared by list endpoints: ``?page=1&page_size=50`` in, a Page out."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
AnySelect = sa.Select[*tuple[Any, ...]]  # a select of any entities and columns


class PageParams(BaseModel):
    page: int = 1
    page_size: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


# async: a plain function here would run in FastAPI's thread pool, a hop per request
async def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="items per page")] = 50,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Paging = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


async def count(session: AsyncSession, stmt: AnySelect) -> int:
    """How many rows ``stmt`` selects (its order, which cannot change the count, left out)."""
    return int((await session.execute(
        sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    )).scalar_one())


async def paginate(session: AsyncSession, stmt: AnySelect, params: PageParams) -> tuple[list[Any], int]:
    """One page of any select, and the total. A select of one entity or column gives its values
    (``select(Ticket)``: tickets); of several, rows to unpack (``for a, code in items``), so joins
    need no count query of their own."""
    total = await count(session, stmt)
    result = await session.execute(stmt.offset(params.offset).limit(params.page_size))
    items = result.scalars().all() if len(stmt.column_descriptions) == 1 else result.all()
    return list(items), total


def page_of(items: list[T], total: int, params: PageParams) -> Page[T]:
    return Page(items=items, total=total, page=params.page, page_size=params.page_size)
