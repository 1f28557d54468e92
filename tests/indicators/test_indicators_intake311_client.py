"""The indicators' port to intake311's imported requests: a page as the events' payloads, keyset
places, and what counts as intake311 away (retry later) or the batch gone (nothing to do)."""

from __future__ import annotations

import json

import httpx
import pytest

from indicators.intake311_client import BatchGone, Intake311Imports, Intake311Unreachable

ITEM = {
    "service_request_id": "41", "legacy_id": "5000001", "service_code": "Noise - Residential",
    "service_name": "Noise - Residential", "department_code": "NYPD", "channel": "phone", "status": "closed",
    "detailed_status": "closed", "requested_datetime": "2025-04-16T07:03:15Z", "expected_datetime": None,
    "updated_datetime": "2025-04-16T09:10:00Z", "closed_datetime": "2025-04-16T09:10:00Z",
    "closure_reason": "fixed", "first_contact_resolution": False, "duplicate_of": None, "lat": 40.7, "long": -74.0,
}


def port(answer) -> tuple[Intake311Imports, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://intake311",
                               headers={"X-API-Key": "k"})
    return Intake311Imports(client), seen


async def test_a_page_reads_as_the_events_would_carry_it():
    imports, seen = port(lambda r: httpx.Response(200, json={"items": [ITEM], "next_after": 41}))
    page = await imports.page("b 1/x", after=7, limit=2)
    await imports.aclose()
    assert seen[0].url.raw_path.startswith(b"/admin/imports/b%201%2Fx/requests?")  # the id is one segment
    assert dict(seen[0].url.params) == {"after": "7", "limit": "2"} and seen[0].headers["x-api-key"] == "k"
    (req,) = page.requests
    assert (req.service_request_id, req.department_code, req.status, req.change) == ("41", "NYPD", "closed", "imported")
    assert req.closed_datetime is not None and req.closed_datetime.utcoffset() is not None
    assert (page.next_after, page.last_id) == (41, 41)


async def test_the_last_page_and_an_empty_one():
    imports, _ = port(lambda r: httpx.Response(200, json={"items": [], "next_after": None}))
    page = await imports.page("b", after=99, limit=10)
    assert (page.requests, page.next_after, page.last_id) == ([], None, 99)


@pytest.mark.parametrize("answer", [
    lambda r: httpx.Response(503, text="down"),
    lambda r: httpx.Response(401, text="the API key is not valid"),
    lambda r: httpx.Response(200, text="<html>"),
    lambda r: httpx.Response(200, json={"items": [{**ITEM, "status": "bogus"}], "next_after": None}),
    lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")),
])
async def test_what_intake311_cannot_answer_is_retried_later(answer):
    imports, _ = port(answer)
    with pytest.raises(Intake311Unreachable):
        await imports.page("b", after=0, limit=10)


async def test_a_batch_intake311_does_not_have_is_gone():
    imports, _ = port(lambda r: httpx.Response(404, text=json.dumps({"title": "Not found"})))
    with pytest.raises(BatchGone):
        await imports.page("b", after=0, limit=10)
