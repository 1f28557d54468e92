"""Who leads each cluster: the deputy mayor, from the local copy of the directory's senior teams.

``directory.senior_team.changed`` carries a department's whole chain, the deputy mayor among it;
one row per department is kept (an event older than the stored one changes nothing), and a
cluster's deputy mayor is the one its departments name, the latest word winning while a change
travels through them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.events import Envelope, SeniorTeamChanged
from citystat_common.uow import UnitOfWork
from indicators.models import SeniorTeamCopy


async def apply_senior_team(uow: UnitOfWork, p: SeniorTeamChanged, *, event_time: datetime) -> bool:
    """False when the stored copy is newer than this event."""
    dm = p.deputy_mayor
    values: dict[str, Any] = {
        "cluster_code": p.cluster_code, "deputy_mayor_id": dm.person_id if dm else None,
        "deputy_mayor_name": dm.name[:300] if dm else None, "deputy_mayor_title": dm.title[:300] if dm and dm.title else None,
        "event_time": event_time,
    }
    row = await uow.session.get(SeniorTeamCopy, p.department_code)
    if row is None:
        row = await uow.add_if_absent(SeniorTeamCopy, {"department_code": p.department_code, **values})
    if row.event_time > event_time:
        return False
    for k, v in values.items():
        setattr(row, k, v)
    return True


async def deputy_mayors(uow: Any) -> dict[str, str]:
    """cluster code -> the deputy mayor's name (one query for the whole board)."""
    rows = (await uow.session.execute(
        sa.select(SeniorTeamCopy.cluster_code, SeniorTeamCopy.deputy_mayor_name)
        .where(SeniorTeamCopy.cluster_code.is_not(None), SeniorTeamCopy.deputy_mayor_name.is_not(None))
        .order_by(SeniorTeamCopy.event_time, SeniorTeamCopy.department_code)
    )).all()
    return {c: name for c, name in rows}  # ordered by time: the latest word wins


async def on_senior_team(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
    """Consumer handler for ``directory.senior_team.changed`` (registered in indicators.handlers)."""
    assert isinstance(payload, SeniorTeamChanged)
    await apply_senior_team(uow, payload, event_time=envelope.time)
