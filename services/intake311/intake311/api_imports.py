"""History import through the API (scope 311:admin): a CSV export and its mapping as a multipart
upload, up to INTAKE311_IMPORT_MAX_BYTES (larger files: ``intake311-worker import-requests``); the
import batches; and a batch's requests in keyset pages, which the indicators read to backfill the
period an ``intake311.history.imported`` event names (scope staff: no personal data)."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from citystat_common.auth import Principal, require_scope
from citystat_common.errors import DomainError, Invalid, NotFound
from citystat_common.pagination import Page, Paging
from citystat_common.web import ReadUoW, get_context
from intake311 import history_store, schemas
from intake311.deps import Intake311Deps
from intake311.history_import import ImportStopped, run_import
from intake311.mapping import Mapping, MappingError

router = APIRouter(tags=["history import"])
Admin = Annotated[Principal, require_scope("311:admin")]
Staff = Annotated[Principal, require_scope("staff")]


class TooLarge(DomainError):
    status = 413
    title = "Content too large"


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the {what} is larger than {limit} bytes: import it with intake311-worker import-requests",
                       field=what)
    return data


@router.post("/admin/imports", response_model=schemas.ImportReportRead, status_code=201,
             summary="Import request history from a CSV export (dry_run: only check and report)",
             responses={200: {"description": "a dry run's report, or a batch imported before (nothing changed)"},
                        413: {"description": "file over the limit"}, 422: {"description": "the mapping or the file's header is wrong"}})
async def import_requests(
    request: Request, response: Response, principal: Admin, deps: Intake311Deps,
    file: Annotated[UploadFile, File(description="the CSV export: a header row, then one request per row")],
    mapping: Annotated[UploadFile, File(description="the mapping (TOML), e.g. deploy/mappings/nyc-open-data.toml")],
    dry_run: Annotated[bool, Query(description="check every row and report; write nothing")] = False,
) -> schemas.ImportReportRead:
    ctx = get_context(request)
    settings = deps.settings
    limit = min(settings.import_max_bytes, settings.max_body_bytes)
    raw = await _read_limited(file, limit, "file")
    try:
        parsed = Mapping.parse(await _read_limited(mapping, 1_000_000, "mapping"), channels=settings.channels,
                               closure_reasons=settings.closure_reasons)
        report = await run_import(ctx.uow, deps, source=io.BytesIO(raw), file_name=file.filename or "upload.csv",
                                  mapping=parsed, actor=principal.actor(),
                                  dry_run=dry_run, chunk_rows=settings.import_batch_rows)
    except MappingError as exc:
        raise Invalid(str(exc), field="mapping") from exc
    except ImportStopped as exc:
        raise Invalid(f"the file cannot be read: {exc}", field="file") from exc
    if dry_run or report.already_finished:
        response.status_code = 200
    return schemas.ImportReportRead(**report.as_dict())


@router.get("/admin/imports", response_model=Page[schemas.ImportBatchRead], summary="Import batches, newest first")
async def list_imports(uow: ReadUoW, principal: Staff, paging: Paging) -> Page[schemas.ImportBatchRead]:
    batches, total = await history_store.list_batches(uow, offset=paging.offset, limit=paging.page_size)
    return Page(items=[schemas.ImportBatchRead.model_validate(b) for b in batches], total=total,
                page=paging.page, page_size=paging.page_size)


@router.get("/admin/imports/{batch_id}", response_model=schemas.ImportBatchRead)
async def get_import(batch_id: str, uow: ReadUoW, principal: Staff) -> schemas.ImportBatchRead:
    batch = await history_store.get_batch(uow, batch_id)
    if batch is None:
        raise NotFound(f"no import batch {batch_id!r}", field="batch_id")
    return schemas.ImportBatchRead.model_validate(batch)


@router.get("/admin/imports/{batch_id}/requests", response_model=schemas.ImportedPage,
            summary="A batch's requests in id order (keyset pages: ?after= the last page's next_after)")
async def imported_requests(
    batch_id: str, uow: ReadUoW, principal: Staff,
    after: Annotated[int, Query(ge=0, le=2**62, description="the id after which to continue (0: the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> schemas.ImportedPage:
    if await history_store.get_batch(uow, batch_id) is None:
        raise NotFound(f"no import batch {batch_id!r}", field="batch_id")
    rows = await history_store.batch_requests(uow, batch_id, after=after, limit=limit)
    items = [schemas.ImportedRequest(
        service_request_id=str(r.id), legacy_id=r.legacy_id, service_code=r.service_code, service_name=name,
        department_code=r.department_code, channel=r.channel, status=r.status, detailed_status=r.detailed_status,
        requested_datetime=r.requested_datetime, expected_datetime=r.expected_datetime,
        updated_datetime=r.updated_datetime, closed_datetime=r.closed_datetime, closure_reason=r.closure_reason,
        first_contact_resolution=r.first_contact_resolution,
        duplicate_of=str(r.duplicate_of) if r.duplicate_of else None, lat=r.lat, long=r.long,
    ) for r, name in rows]
    return schemas.ImportedPage(items=items, next_after=rows[-1][0].id if len(rows) == limit else None)
