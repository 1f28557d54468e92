"""Directory import: idempotent (a second import of the same file changes nothing: no people,
no history rows, no events), contradictions inside one file are errors naming the rows, and the
report counts rows read, applied, unchanged and in error. SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

from citystat_common.demo import directory_rows
from citystat_common.testing import auth

W = auth("directory")
CSV = (
    "department_code,department_name,cluster_code,cluster_name,role,person_name,person_title,person_email,person_phone\n"
    "STREETS,Streets Department,OPS,Operations,oit_partner,Linus Byte,OIT BP,linus@city.example.gov,+1 215-555-0101\n"
    "STREETS,Streets Department,OPS,Operations,department_head,Carla Road,Commissioner,,\n"
    "STREETS,Streets Department,OPS,Operations,hr_partner,Carla Road,Commissioner,,\n"
    "WATER,Water Department,OPS,Operations,,,,,\n"
    ",,OPS,Operations,deputy_mayor,Nadia Noemail,Deputy Mayor,,\n"
)


async def _counts(client):
    people = (await client.get("/people", params={"page_size": 1})).json()["total"]
    history = (await client.get("/assignments", params={"page_size": 1})).json()["total"]
    return people, history


async def _csv(client, text):
    return await client.post("/import", content=text, headers={**W, "content-type": "text/csv"})


async def test_a_second_import_of_the_same_file_changes_nothing(client, outbox):
    for send in (
        lambda: client.post("/import", json={"rows": directory_rows()}, headers=W),
        lambda: _csv(client, CSV.replace(",,OPS,Operations,deputy_mayor", "WATER,Water Department,OPS,Operations,deputy_mayor")),
    ):
        first = await send()
        assert first.status_code == 200, first.text
        before, events = await _counts(client), await outbox()
        audit = (await client.get("/audit", params={"page_size": 1}, headers=auth("staff"))).json()["total"]
        again = await send()
        assert again.status_code == 200, again.text
        report = again.json()
        assert report["ok"] and report["applied"] == 0 and report["unchanged"] == report["rows"] == first.json()["rows"]
        assert report["people"] == report["assignments"] == report["departments"] == report["clusters"] == 0
        assert await _counts(client) == before
        assert await outbox() == events
        assert (await client.get("/audit", params={"page_size": 1}, headers=auth("staff"))).json()["total"] == audit


async def test_people_without_email_are_found_again(client):
    r = await _csv(client, CSV.replace(",,OPS,Operations,deputy_mayor", "WATER,Water Department,OPS,Operations,deputy_mayor"))
    assert r.status_code == 200, r.text
    assert r.json()["people"] == 3 and r.json()["assignments"] == 4
    carla = (await client.get("/people", params={"q": "carla road"})).json()
    assert carla["total"] == 1
    # a changed title is applied to the same person, and only that row counts as applied
    changed = CSV.replace("department_head,Carla Road,Commissioner", "department_head,Carla Road,Chief Commissioner")
    changed = changed.replace(",,OPS,Operations,deputy_mayor", "WATER,Water Department,OPS,Operations,deputy_mayor")
    r = await _csv(client, changed)
    assert r.status_code == 422, r.text  # the same person with two titles in one file
    assert {e["row"] for e in r.json()["errors"]} == {3}
    changed = changed.replace("hr_partner,Carla Road,Commissioner", "hr_partner,Carla Road,Chief Commissioner")
    r = await _csv(client, changed)
    assert r.status_code == 200, r.text
    # the first of Carla's rows brings her title up to date; the second finds it so
    assert r.json()["applied"] == 1 and r.json()["unchanged"] == 4 and r.json()["people"] == 0
    assert (await client.get("/people", params={"q": "carla road"})).json()["items"][0]["title"] == "Chief Commissioner"
    assert (await client.get("/assignments", params={"department": "STREETS"})).json()["total"] == 3


async def test_two_names_for_one_department_is_an_error_naming_the_rows(client):
    rows = [
        {"department_code": "STREETS", "department_name": "Streets Department"},
        {"department_code": "WATER", "department_name": "Water Department"},
        {"department_code": "STREETS", "department_name": "Streets Dept"},
    ]
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422, r.text
    report = r.json()
    (error,) = report["errors"]
    assert error["row"] == 3 and error["rows"] == [1, 3] and error["field"] == "department_name"
    assert "rows 1, 3" in error["message"] and "STREETS" in error["message"]
    assert report["rows"] == 3 and report["failed"] == 1 and report["applied"] == 0
    assert (await client.get("/departments")).json()["total"] == 0


async def test_other_contradictions_in_one_file(client):
    base = {"department_code": "STREETS", "department_name": "Streets"}
    rows = [
        {**base, "cluster_code": "OPS", "cluster_name": "Operations"},
        {**base, "cluster_code": "SAFE", "cluster_name": "Safety"},  # another cluster for STREETS
        {"department_code": "WATER", "department_name": "Water", "cluster_code": "OPS", "cluster_name": "Ops"},
        {**base, "role": "oit_partner", "person_name": "A One"},
        {**base, "role": "oit_partner", "person_name": "B Two"},  # two holders of one role
        {**base, "role": "hr_partner", "person_name": "C", "person_email": "c@city.example.gov"},
        {**base, "role": "budget_partner", "person_name": "D", "person_email": "C@city.example.gov"},  # one email, two names
    ]
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422, r.text
    by_row = {e["row"]: e for e in r.json()["errors"]}
    assert set(by_row) == {2, 3, 5, 7}
    assert by_row[2]["field"] == "cluster_code" and by_row[2]["rows"] == [1, 2]
    assert by_row[3]["field"] == "cluster_name" and by_row[3]["rows"] == [1, 3]
    assert by_row[5]["field"] == "person_name" and by_row[5]["rows"] == [4, 5]
    assert by_row[7]["field"] == "person_name" and by_row[7]["rows"] == [6, 7]


async def test_the_report_counts_rows_not_errors(client):
    rows = [
        {"department_code": "OK", "department_name": "Fine"},
        {"department_code": "bad/code", "department_name": "", "person_email": "nope"},  # three errors, one row
        {"department_code": "X1", "department_name": "X", "role": "oit_partner"},  # no person_name
    ]
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422
    report = r.json()
    assert report["rows"] == 3 and report["failed"] == 2 and len(report["errors"]) == 4
    assert report["applied"] == report["unchanged"] == 0
    assert {e["row"] for e in report["errors"]} == {2, 3}


async def test_import_keeps_a_scheduled_assignment_and_reports_the_conflict(client):
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200
    new = (await client.post("/people", json={"name": "Later Partner"}, headers=W)).json()
    starts = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": new["id"], "starts_at": starts}, headers=W)
    assert r.status_code == 200
    # the same file again: the current holders are unchanged, the scheduled change stays
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == 0
    upcoming = (await client.get("/departments/FIRE/senior-team")).json()["upcoming"]
    assert [u["person"]["id"] for u in upcoming] == [new["id"]]
    # a file naming a third person for that role now would overlap the scheduled one
    rows = [r for r in directory_rows() if r["department_code"] == "FIRE" and r["role"] == "hr_partner"]
    rows[0] = {**rows[0], "person_name": "Someone Else", "person_email": "someone.else@city.example.gov"}
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["row"] == 1 and r.json()["errors"][0]["field"] == "role"


async def test_unknown_role_and_control_characters_in_rows_are_row_errors(client):
    rows = [
        {"department_code": "STREETS", "department_name": "Streets", "role": "chief_wizard", "person_name": "Merlin"},
        {"department_code": "WATER", "department_name": "Water\x07works"},
    ]
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(1, "role"), (2, "department_name")]
    csv_text = "department_code,department_name\nWATER,Water\x07works\n"
    r = await _csv(client, csv_text)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_name", r.text
    # A NUL is refused at the door for every route (citystat_common.textguard), before any row is read:
    # the whole file is a clear 422 and nothing is stored.
    rows[1]["department_name"] = "Water\x00works"
    for r in (await client.post("/import", json=rows, headers=W),
              await _csv(client, csv_text.replace("\x07", "\x00"))):
        assert r.status_code == 422 and "NUL character" in r.json()["detail"], r.text
    assert (await client.get("/departments")).json()["total"] == 0
