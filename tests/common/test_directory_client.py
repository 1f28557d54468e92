"""The on-demand department lookup shared by intake311 and indicators (no broker, no database:
the directory is an httpx MockTransport)."""

import httpx
import pytest

from citystat_common.directory import DirectoryDepartments, DirectoryUnreachable
from citystat_common.http import correlated_client
from citystat_common.logging import correlation_id_var


def directory(handler):
    return DirectoryDepartments(correlated_client(transport=httpx.MockTransport(handler), base_url="http://directory"))


async def test_a_known_department_is_returned_and_an_unknown_one_is_none():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.raw_path, request.headers.get("x-correlation-id")))
        if request.url.path == "/departments/WATER":
            return httpx.Response(200, json={"code": "WATER", "name": "Water Department", "active": True})
        return httpx.Response(404, json={"title": "Not found"})

    d = directory(handler)
    token = correlation_id_var.set("cid-123")
    try:
        assert (await d.get("WATER"))["name"] == "Water Department"
        assert await d.get("NOPE") is None
        assert await d.get("../admin/keys") is None  # one path segment, whatever the code holds
    finally:
        correlation_id_var.reset(token)
        await d.aclose()
    assert seen[0] == (b"/departments/WATER", "cid-123")  # the caller's correlation id goes along
    assert seen[2][0] == b"/departments/..%2Fadmin%2Fkeys"


@pytest.mark.parametrize("answer", [
    httpx.Response(503, json={"title": "Unavailable"}),
    httpx.Response(200, text="<html>proxy error</html>"),
    httpx.Response(200, json=["not", "a", "department"]),
])
async def test_an_answer_that_is_not_a_department_means_the_directory_could_not_tell(answer):
    d = directory(lambda request: answer)
    with pytest.raises(DirectoryUnreachable):
        await d.get("WATER")
    await d.aclose()


async def test_a_directory_that_does_not_answer_is_unreachable():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    d = directory(handler)
    with pytest.raises(DirectoryUnreachable):
        await d.get("WATER")
    await d.aclose()


async def test_a_client_lent_by_the_caller_is_left_open():
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)), base_url="http://d")
    await DirectoryDepartments(client, owned=False).aclose()
    assert not client.is_closed
    await DirectoryDepartments(client).aclose()
    assert client.is_closed
