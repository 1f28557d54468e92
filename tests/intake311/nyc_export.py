"""A small generator of CSV files in New York's 311 open-data layout (the columns of the portal's
export, timestamps like 2024-04-16T03:03:15.000 in New York local time). Tests write their own
files with it: nothing is downloaded."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from intake311.mapping import NYC_OPEN_DATA_COLUMNS as NYC_COLUMNS

AGENCY_NAMES = {"NYPD": "New York City Police Department", "DSNY": "Department of Sanitation",
                "HPD": "Department of Housing Preservation and Development", "DOITT": "Dept of Information Technology"}


def nyc_row(key: int, *, created: str, closed: str = "", agency: str = "NYPD", complaint: str = "Noise - Residential",
            status: str = "Closed", resolution: str = "", channel: str = "PHONE", lat: float | None = 40.7128,
            long: float | None = -74.006, **extra: Any) -> dict[str, str]:
    row = {c: "" for c in NYC_COLUMNS}
    row.update(
        unique_key=str(key), created_date=created, closed_date=closed, agency=agency,
        agency_name=AGENCY_NAMES.get(agency, agency), complaint_type=complaint, descriptor="Loud Music/Party",
        location_type="Residential Building/House", incident_zip="10007", incident_address="100 CHURCH STREET",
        street_name="CHURCH STREET", address_type="ADDRESS", city="NEW YORK", status=status,
        resolution_description=resolution, resolution_action_updated_date=closed, community_board="01 MANHATTAN",
        bbl="1000000001", borough="MANHATTAN", x_coordinate_state_plane="981845", y_coordinate_state_plane="198904",
        open_data_channel_type=channel, park_facility_name="Unspecified", park_borough="MANHATTAN",
        latitude="" if lat is None else repr(lat), longitude="" if long is None else repr(long),
        location="" if lat is None else f"({lat}, {long})",
    )
    row.update({k: str(v) for k, v in extra.items()})
    return row


def write_nyc_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=NYC_COLUMNS, quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        writer.writerows(rows)
    return path
