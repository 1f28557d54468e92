"""The city's address points (issue 21) as rules: reading the address list (CSV) with a report of
every bad row, and placing a report that gives an address and no position.

Matching is exact after normalisation (``duplicates.address_key``: case, punctuation, spacing and the
usual abbreviations do not count): an ``address_id`` is the address list's own id; an address
string matches the one point with the same normalised text. Nothing is guessed: an address that
matches no point, or several, leaves the request without a position, and its history says why.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intake311.areas import Extent, position_problem
from intake311.duplicates import address_key

COLUMNS = ("address_id", "address", "lat", "long")
MAX_ROWS = 2_000_000
MAX_REPORTED = 200  # problems listed in a report; the count says how many there were


@dataclass
class AddressReport:
    rows: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    error_count: int = 0

    def problem(self, row: int | None, address_id: str | None, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append({"row": row, "address_id": address_id, "problem": text})


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_addresses(text: str, *, extent: Extent | None, now: Any) -> AddressReport:
    """Rows for address_points from a CSV with the header address_id,address,lat,long (other columns
    are ignored); ``row`` in the report is the line number, the header being line 1."""
    report = AddressReport(rows=[], errors=[])
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        report.problem(1, None, f"the header lacks {', '.join(missing)}: it must name {', '.join(COLUMNS)}")
        return report
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            report.problem(line, None, f"more than {MAX_ROWS} addresses in one file")
            break
        aid = (raw.get("address_id") or "").strip()
        address = (raw.get("address") or "").strip()
        lat, long = _number((raw.get("lat") or "").strip()), _number((raw.get("long") or "").strip())
        if not aid or len(aid) > 100:
            report.problem(line, aid or None, "address_id is empty or longer than 100 characters")
            continue
        if aid in seen:
            report.problem(line, aid, f"address_id {aid!r} is also on line {seen[aid]}")
            continue
        seen[aid] = line
        key = address_key(address)
        if key is None or len(address) > 500:
            report.problem(line, aid, "address is empty or longer than 500 characters")
            continue
        if lat is None or long is None:
            report.problem(line, aid, "lat and long must be decimal degrees")
            continue
        problem = position_problem(long, lat, extent)
        if problem:
            report.problem(line, aid, problem.replace(f"[{long}, {lat}]", f"lat {lat}, long {long}"))
            continue
        report.rows.append({"address_id": aid, "address": address, "address_key": key, "lat": lat, "long": long,
                            "updated_at": now})
    if not report.rows and not report.error_count:
        report.problem(None, None, "the file has no addresses")
    return report


@dataclass(frozen=True)
class Placement:
    """Where an address-only report was placed, or why it was not."""

    lat: float | None
    long: float | None
    note: str


def place(address_id: str | None, address_string: str | None, by_id: Mapping[str, tuple[float, float]],
          by_key: Mapping[str, list[tuple[str, float, float]]]) -> Placement:
    """The position of a report from the address list: its ``address_id``, else its address."""
    if address_id and address_id in by_id:
        lat, long = by_id[address_id]
        return Placement(lat, long, f"Located at address {address_id} of the city's address list.")
    key = address_key(address_string)
    found = by_key.get(key, []) if key else []
    if len(found) == 1:
        aid, lat, long = found[0]
        return Placement(lat, long, f"Located at address {aid} of the city's address list.")
    given = " and ".join(x for x in (f"address_id {address_id!r}" if address_id else "",
                                     f"address {address_string!r}" if address_string else "") if x)
    if len(found) > 1:
        ids = ", ".join(a for a, _, _ in found[:5])
        return Placement(None, None, f"Not located: {given} matches {len(found)} addresses of the city's address "
                                     f"list ({ids}); no position was chosen.")
    return Placement(None, None, f"Not located: {given} is not in the city's address list; no position was guessed.")
