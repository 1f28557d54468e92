"""Issue 17, whose requests a caller may act on (intake311.permissions) and how a change's author reads
(intake311.actors): pure rules, no I/O."""

import pytest

from citystat_common.auth import Principal, person_principal
from intake311 import actors, permissions


def person(*groups: str, name: str = "Nadia Santiago") -> Principal:
    return person_principal(name=name, email="n@city.example.gov", subject="n", roles=groups, via="bearer")


STREETS_STAFF = person("citystat-311_staff", "citystat-dept-STREETS")
CONTACT_CENTER = person("citystat-311_staff", "citystat-dept-CONTACT311")
TWO_DEPARTMENTS = person("citystat-311_staff", "citystat-dept-STREETS", "citystat-dept-water")
NO_DEPARTMENT = person("citystat-311_staff")
ADMIN_PERSON = person("citystat-admin")
CALL_CENTER_KEY = Principal(name="call_center", scopes=frozenset({"311:write"}))
STREETS_KEY = Principal(name="streets_crm", scopes=frozenset({"311:write"}), departments=frozenset({"STREETS"}))


@pytest.mark.parametrize(("who", "department", "allowed"), [
    (STREETS_STAFF, "STREETS", True),
    (STREETS_STAFF, "streets", True),
    (STREETS_STAFF, "WATER", False),
    (TWO_DEPARTMENTS, "WATER", True),
    (CONTACT_CENTER, "WATER", True),  # the contact center takes calls about everything
    (ADMIN_PERSON, "POLICE", True),
    (NO_DEPARTMENT, "STREETS", False),  # a person in no department acts on no department's requests
    (CALL_CENTER_KEY, "POLICE", True),  # a key without departments: as before
    (STREETS_KEY, "STREETS", True),
    (STREETS_KEY, "WATER", False),
    (person("citystat-311_staff", "citystat-dept-dohmh"), "dohmh", True),  # a city's own code, lower case
    (person("citystat-311_staff", "citystat-dept-NYC H+H"), "NYC H+H", True),
    (person("citystat-311_staff", "citystat-dept-dohmh"), "NYC H+H", False),
])
def test_who_may_act_on_which_department(who, department, allowed):
    assert permissions.may_act_on(who, department) is allowed
    assert (permissions.refusal(who, department) is None) is allowed


def test_the_queue_of_a_person_is_their_departments_as_the_city_writes_them():
    staff = person("citystat-311_staff", "citystat-dept-dohmh")
    assert permissions.visible_departments(staff, ["dohmh", "STREETS", "DOHMH2"]) == {"DOHMH", "dohmh"}
    assert permissions.visible_departments(ADMIN_PERSON, ["dohmh"]) is None


def test_a_refusal_names_the_department_and_is_a_403_on_the_field():
    assert permissions.refusal(STREETS_STAFF, "WATER") == (
        "this request belongs to WATER; your department is STREETS: only WATER's 311 staff or the 311 contact "
        "center may act on it")
    assert "your departments are STREETS, WATER" in permissions.refusal(TWO_DEPARTMENTS, "POLICE")
    assert "key streets_crm is limited to STREETS" in permissions.refusal(STREETS_KEY, "WATER")
    assert "you are in no department" in permissions.refusal(NO_DEPARTMENT, "STREETS")
    with pytest.raises(permissions.NotYours) as refused:
        permissions.check(STREETS_STAFF, "WATER")
    assert refused.value.status == 403 and refused.value.errors[0]["field"] == "department_code"


def test_the_queue_a_caller_works():
    assert permissions.visible_departments(STREETS_STAFF) == {"STREETS"}
    assert permissions.visible_departments(CONTACT_CENTER) is None
    assert permissions.visible_departments(CALL_CENTER_KEY) is None
    assert permissions.visible_departments(NO_DEPARTMENT) == frozenset()


def test_how_an_author_reads():
    nadia = STREETS_STAFF.actor()
    assert actors.note_author(nadia) == {"author": "Nadia Santiago", "author_kind": "person",
                                         "author_email": "n@city.example.gov", "author_via": "bearer"}
    assert actors.history_line("closed", "Nadia Santiago", "person") == "Closed by Nadia Santiago"
    assert actors.history_line("acknowledged", "ops", "key") == "Acknowledged by key ops"
    assert actors.history_line("linked", "intake311", "system") == "Linked as a duplicate by the 311 system"
    assert actors.label("ops", None) == "ops"  # a note from before migration 0008 reads as it always did
    # the public feed names no member of staff; keys and old rows as before
    assert actors.public_author("Nadia Santiago", "person") == "City staff"
    assert actors.public_author("web", "key") == "web" and actors.public_author("ops", None) == "ops"
