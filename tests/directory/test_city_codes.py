"""A city's department codes as it has them (issue 20): case kept, spaces and "+" allowed, looked
up exactly, percent-encoded in paths."""

from citystat_common.codes import quote_code
from citystat_common.testing import auth

W = auth("directory")


async def test_departments_keep_the_city_codes(client):
    for code, name in (("NYC H+H", "Health + Hospitals"), ("3-1-1", "311 Customer Service Center"),
                       ("dohmh", "Health and Mental Hygiene")):
        r = await client.post("/departments", json={"code": code, "name": name}, headers=W)
        assert r.status_code == 201, r.text
        assert r.json()["code"] == code  # not upper-cased
        got = await client.get(f"/departments/{quote_code(code)}")
        assert got.status_code == 200 and got.json()["name"] == name
    # looked up exactly: "DOHMH" is another code, which the city does not have
    assert (await client.get("/departments/DOHMH")).status_code == 404
    for bad in ("A/B", " NYPD", "A,B"):
        r = await client.post("/departments", json={"code": bad, "name": "x"}, headers=W)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "code", r.text
