"""Offset pagination shared by list endpoints: ``?page=1&page_size=50`` in, a Page out."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class PageParams(BaseModel):
    page: int = 1
    page_size: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_params(
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


async def paginate(session: AsyncSession, stmt: sa.Select, params: PageParams) -> tuple[list, int]:  # type: ignore[type-arg]
    total = (await session.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    rows = (await session.execute(stmt.offset(params.offset).limit(params.page_size))).scalars().all()
    return list(rows), int(total)
