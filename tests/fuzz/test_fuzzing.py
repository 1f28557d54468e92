"""The fuzzer itself (citystat_common.fuzzing), on a small app with the faults issue 16 found:
a datetime that overflows when moved to UTC, a period whose next one is past year 9999, a NaN
and an infinity in a JSON number, a form field read as a number, and a response that breaks its
own schema. Schemathesis alone (fuzz_openapi) misses the first ones; the edge run finds each,
names the slot and the value, and quotes the traceback's last frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from citystat_common.fuzz_inputs import Slot, operation_slots, slot_values
from citystat_common.fuzz_log import traceback_tail
from citystat_common.fuzzing import fuzz_service
from citystat_common.logging import configure_logging
from citystat_common.testing import ThreadServer, fuzz_openapi

log = structlog.get_logger("fuzz-target")


class Reading(BaseModel):
    value: float
    label: str = ""


class Echo(BaseModel):
    count: int


def faulty_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", exc_info=exc)  # as the services log theirs
        return JSONResponse({"detail": "internal"}, status_code=500)

    @app.get("/when")
    async def when(at: str | None = None) -> dict[str, Any]:
        if at is None:
            return {"utc": None}
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError:
            raise HTTPException(400, "not a datetime") from None
        return {"utc": parsed.astimezone(UTC).isoformat()}  # OverflowError at year 1 with +05:00

    @app.get("/periods/{period}")
    async def period(period: str) -> dict[str, Any]:
        try:
            year, month = (int(x) for x in period.split("-"))
            start = datetime(year, month, 1)
        except ValueError:
            raise HTTPException(400, "not a period") from None
        return {"next": (start + timedelta(days=32)).replace(day=1).isoformat()}  # OverflowError in 9999-12

    @app.post("/readings")
    async def readings(body: Reading) -> dict[str, Any]:
        return {"rounded": int(body.value)}  # NaN and infinity

    @app.post("/form", openapi_extra={"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"lat": {"type": "number"}}}}}}})
    async def form(request: Request) -> dict[str, Any]:
        lat = (parse_qs((await request.body()).decode()).get("lat") or ["0"])[0]
        return {"lat": int(float(lat))}  # ValueError on 'NaN', OverflowError on 'Infinity'

    @app.get("/echo", response_model=Echo)
    async def echo(n: int = 0) -> Any:
        return JSONResponse({"count": "many" if n == -1 else n})  # breaks its documented schema

    return app


@pytest.fixture(scope="module")
def server():
    configure_logging("fuzz-target", fmt="console")  # as the services configure theirs
    with ThreadServer(faulty_app()) as s:
        yield s


def _failures_by_slot(failures: list[str]) -> dict[str, str]:
    return {f.split(" failed for", 1)[0]: f for f in failures}


def test_the_edge_run_finds_every_fault_with_its_input_and_traceback(server):
    found = {slot: f for slot, f in _failures_by_slot(fuzz_service(server.url, max_examples=3)).items()
             if not slot.endswith("[generated]")}  # Schemathesis' own cases may find some too
    assert set(found) == {"GET /when [query:at]", "GET /periods/{period} [path:period]",
                          "POST /readings [body:value]", "POST /form [body:lat]", "GET /echo [query:n]"}, found
    when = found["GET /when [query:at]"]
    assert "'0001-01-01T00:00:00+05:00'" in when and "'9999-12-31T23:00:00-05:00'" in when
    assert "GET /when?at=0001-01-01T00%3A00%3A00%2B05%3A00" in when
    assert "test_fuzzing.py" in when and "astimezone" in when and "OverflowError" in when
    assert "'9999-12'" in found["GET /periods/{period} [path:period]"]
    readings = found["POST /readings [body:value]"]
    assert "nan" in readings and "-inf" in readings and "NaN" in readings
    assert "ValueError: cannot convert float NaN to integer" in readings
    assert "'NaN'" in found["POST /form [body:lat]"] and "'Infinity'" in found["POST /form [body:lat]"]
    assert "does not conform to its schema" in found["GET /echo [query:n]"]


def test_schemathesis_alone_misses_the_date_and_period_faults(server):
    labels = {f.split(":", 1)[0] for f in fuzz_openapi(server.url, max_examples=25)}
    assert "GET /when" not in labels and "GET /periods/{period}" not in labels, labels


def test_every_parameter_and_body_field_is_a_slot_with_edges_of_its_kind():
    doc = {"components": {"schemas": {"In": {"type": "object", "properties": {
        "when": {"type": "string", "format": "date-time"}, "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
        "Item": {"type": "object", "properties": {"period": {"type": "string"}}}}}}
    op = {"parameters": [{"name": "code", "in": "path", "schema": {"type": "string"}},
                         {"name": "on", "in": "query", "schema": {"enum": ["a", "b"]}},
                         {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
          "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}}}
    slots = {s.label: s for s in operation_slots(doc, op, {"items": [{"period": "2026-01"}], "extra": 1})}
    assert set(slots) == {"path:code", "query:on", "header:Idempotency-Key", "body:when", "body:n",
                          "body:items.[0].period", "body:extra"}
    assert slots["body:n"].kind == "number" and slots["query:on"].kind == "enum"
    assert {"0001-01-01T00:00:00+05:00", "9999-W99", "FY0001-Q1", "NaN", "1e308"} <= set(slot_values(slots["path:code"]))
    assert {1e308, -1e308, 2**63, -0.0, "Infinity"} <= set(map(_hashable, slot_values(slots["body:n"])))
    assert all(v.isascii() and v.isprintable() for v in slot_values(slots["header:Idempotency-Key"]))
    assert slot_values(Slot("query", ("status",), "array", "string"))[0] == ["0001-01-01T00:00:00+05:00"]


def _hashable(v: Any) -> Any:
    return "nan" if isinstance(v, float) and v != v else v


def test_traceback_tail_names_the_projects_last_frame_and_the_exception():
    text = ('Traceback (most recent call last):\n'
            '  File "/work/main/services/indicators/indicators/periods.py", line 40, in next_period\n'
            '    return date(y + 1, 1, 1)\n'
            '  File "/work/main/.venv/lib/python3.11/site-packages/x.py", line 1, in f\n    g()\n'
            'ValueError: year 10000 is out of range\n')
    assert traceback_tail(text) == ("services/indicators/indicators/periods.py:40 in next_period: "
                                    "return date(y + 1, 1, 1) | ValueError: year 10000 is out of range")
