"""Issue 22, honest states: a figure that cannot be judged yet ("building a baseline", shown with
its value, never grey), a period passed without its figure ("no report", grey: somebody owes it)
and judged colours are distinct on tiles, the drill-down, the report, both CSVs and the API."""

import csv
import io
import re

from ind_helpers import create, feed, month, observe, target


async def _three(client, app):
    await create(client, code="STREETS.baseline")  # a value, no target: nothing to judge against
    await observe(client, "STREETS.baseline", month(1), 72)
    await create(client, code="STREETS.owed")  # last figure months ago: the next one is overdue
    await target(client, "STREETS.owed", 90)
    await feed(app, "STREETS.owed", [(4, 95)])
    await create(client, code="STREETS.red")
    await target(client, "STREETS.red", 90)
    await observe(client, "STREETS.red", month(1), 50)


def _tile(html: str, code: str) -> str:
    m = re.search(rf'<a class="tile[^"]*"[^>]*data-code="{re.escape(code)}".*?</a>', html, re.S)
    assert m, code
    return m.group(0)


async def test_states_are_distinct_everywhere(client, app):
    await _three(client, app)
    api = {i["code"]: (i["status"], i["state"]) for i in (await client.get("/indicators")).json()["items"]}
    assert api == {"STREETS.baseline": ("grey", "baseline"), "STREETS.owed": ("grey", "no_report"),
                   "STREETS.red": ("red", "red")}
    [row] = (await client.get("/indicators/STREETS.baseline/observations")).json()
    assert (row["status"], row["state"], row["value"]) == ("grey", "baseline", 72)

    board = (await client.get("/dashboard")).text
    baseline = _tile(board, "STREETS.baseline")
    assert 'status-baseline' in baseline and "BUILDING A BASELINE" in baseline and "72.0%" in baseline
    assert "NO REPORT" not in baseline and "status-grey" not in baseline
    owed = _tile(board, "STREETS.owed")
    assert "status-no_report" in owed and "NO REPORT" in owed
    assert "status-red" in _tile(board, "STREETS.red")

    drill = (await client.get("/dashboard/indicators/STREETS.baseline")).text
    assert "BUILDING A BASELINE" in drill and "NO REPORT" not in drill.split('id="current-status"')[1][:300]
    report = (await client.get("/dashboard/departments/STREETS/report")).text
    assert "BUILDING A BASELINE" in report and "NO REPORT" in report

    rows = {r["indicator_code"]: r for r in csv.DictReader(io.StringIO((await client.get("/dashboard.csv")).text))}
    assert {c: r["state"] for c, r in rows.items()} == {
        "STREETS.baseline": "baseline", "STREETS.owed": "no_report", "STREETS.red": "red"}
    hist = list(csv.DictReader(io.StringIO((await client.get(
        "/dashboard/indicators/STREETS.baseline/export.csv")).text)))
    assert [r["state"] for r in hist] == ["baseline"]
