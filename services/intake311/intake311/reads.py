"""Reads the API, the pages and the export share: requests with the names people read beside them."""

from __future__ import annotations

import sqlalchemy as sa

from intake311.models import Department, Service, ServiceRequest


def requests_with_names() -> sa.Select:  # type: ignore[type-arg]
    """Each request with its service's name and its department's name (None for a department the
    local copy of the directory does not hold yet). Callers add their filters and order."""
    R = ServiceRequest
    return (
        sa.select(R, Service.service_name, Department.name)
        .join(Service, Service.service_code == R.service_code)
        .outerjoin(Department, Department.code == R.department_code)
    )
