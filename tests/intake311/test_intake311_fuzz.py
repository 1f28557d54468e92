"""intake311 is fuzzed with the other services (tests/fuzz/test_schemathesis.py); its Open311
routes read their parameters from the raw request, so the fuzzer is told them there
(tests/fuzz/open311_schema.py). This keeps that list honest: every name the routes read is in it,
so a parameter added to the routes is fuzzed too."""

import re
from pathlib import Path

import open311_schema  # from tests/fuzz (pyproject's pytest pythonpath)

import intake311.api_open311
import intake311.open311
import intake311.open311_search


def names_read_by_the_routes() -> set[str]:
    names: set[str] = set(intake311.open311.TEXT_LIMITS)
    for module in (intake311.open311, intake311.open311_search, intake311.api_open311):
        source = Path(module.__file__ or "").read_text()
        names |= set(re.findall(r"""params\.get\(["']([A-Za-z_]+)["']\)""", source))
        names |= set(re.findall(r"""times\.get\(["']([A-Za-z_]+)["']\)""", source))
        for group in re.findall(r"for name in \(([^)]*)\)", source):  # names read in a loop
            names |= set(re.findall(r"""["']([A-Za-z_]+)["']""", group))
    return names


def test_the_fuzzer_knows_every_parameter_the_open311_routes_read():
    read = names_read_by_the_routes()
    assert {"start_date", "updated_before", "page_size", "lat", "radius", "api_key", "description"} <= read
    assert read - open311_schema.open311_names() == set()


def test_the_patch_documents_both_encodings_and_formats():
    doc = {"paths": {"/open311/v2/requests.{fmt}": {
        "post": {"parameters": [{"name": "fmt", "in": "path", "schema": {"type": "string"}}]},
        "get": {"parameters": [{"name": "fmt", "in": "path", "schema": {"type": "string"}}]},
    }}}
    patched = open311_schema.patch_open311(doc, service_codes=["POTHOLE"], attributes={"attribute[DEPTH]": {"type": "string"}})
    post = patched["paths"]["/open311/v2/requests.{fmt}"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/x-www-form-urlencoded", "application/json"}
    assert "attribute[DEPTH]" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    get = patched["paths"]["/open311/v2/requests.{fmt}"]["get"]
    assert get["parameters"][0]["schema"]["enum"] == ["json", "xml"]
    assert {p["name"] for p in get["parameters"]} >= {"start_date", "bbox", "radius", "jurisdiction_id"}
