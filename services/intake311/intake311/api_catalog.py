"""Catalog import through the API (scope 311:admin): a city's whole service catalog as one CSV or
JSON body (intake311.catalog_file), all or nothing, every problem reported at once; importing the
same file again changes nothing. ``intake311-worker import-catalog`` does the same from a file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from citystat_common.auth import Principal, require_scope
from citystat_common.web import UoW
from intake311 import catalog_file
from intake311.api import catalog_changed
from intake311.catalog_import import departments_resolver, import_catalog
from intake311.deps import Intake311Deps

router = APIRouter(tags=["catalog admin"])
Admin = Annotated[Principal, require_scope("311:admin")]


class CatalogChange(BaseModel):
    service_code: str
    change: str = Field(description="created, updated or unchanged")
    fields: list[str] = Field(default_factory=list, description="the stored fields an update changes")


class CatalogImportRead(BaseModel):
    """``ok``: stored (or, in a dry run, would be); when not ok nothing is stored and ``errors`` lists
    every problem as {row, field, message} (row 1: the first row after the header; field: a column)."""

    ok: bool
    dry_run: bool
    rows: int
    services: int
    created: int
    updated: int
    unchanged: int
    errors: list[dict[str, Any]] = Field(default_factory=list)
    changes: list[CatalogChange] = Field(default_factory=list)


@router.post(
    "/admin/catalog/import", response_model=CatalogImportRead,
    summary="Import the service catalog (CSV or JSON rows), all or nothing; the same file again changes nothing",
    description=(
        "CSV (text/csv) with a header row, or JSON: a list of rows or {\"rows\": [...]}, each an object of the "
        f"same columns: `{catalog_file.HEADER}`. One row per service or per attribute of a service (rows with "
        "the same service_code are one service). Owners and department rules name departments the directory "
        "knows. Nothing is stored unless every row is valid; the report lists every problem. README, How a city onboards, "
        "describes the columns."
    ),
    responses={422: {"model": CatalogImportRead, "description": "problems in the file: nothing stored"}},
)
async def import_catalog_route(
    request: Request, uow: UoW, deps: Intake311Deps, who: Admin,
    dry_run: Annotated[bool, Query(description="check every row and report what would change; store nothing")] = False,
) -> Response:
    rows, entries, errors = catalog_file.parse(await request.body(), request.headers.get("content-type"))
    report = await import_catalog(uow, deps, entries=entries, rows=rows, errors=errors, resolve=departments_resolver(uow, deps),
                                  actor=who.actor(), dry_run=dry_run)
    body = CatalogImportRead(**report.as_dict()).model_dump_json()
    if not report.ok or dry_run:
        await uow.rollback()  # a department fetched from the directory is stored by the import that uses it
        return Response(body, status_code=422 if not report.ok else 200, media_type="application/json")
    await uow.commit()
    if report.created or report.updated:
        catalog_changed(request)
    return Response(body, status_code=200, media_type="application/json")
