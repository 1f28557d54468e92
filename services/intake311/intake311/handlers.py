"""Events intake311 consumes: the directory's departments, kept as a local copy so that the
catalog can check owning departments and name the agency responsible without calling back."""

from __future__ import annotations

from citystat_common.events import DepartmentUpserted, Envelope
from citystat_common.uow import UnitOfWork
from intake311 import service


async def on_department_upserted(uow: UnitOfWork, envelope: Envelope, payload: DepartmentUpserted) -> None:
    await service.upsert_department(uow, payload)


HANDLERS = {"directory.department.upserted": on_department_upserted}
