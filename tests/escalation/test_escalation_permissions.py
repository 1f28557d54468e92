"""The Senior Team Model as a rule (escalation.permissions): pure, no I/O."""

from escalation.permissions import Asker, Team, for_department, office_only, on_ticket

GORDON = {"person_id": "p-gordon", "name": "Gordon Nakamura", "email": "gordon.nakamura@city.example.gov"}
DESMOND = {"person_id": "p-desmond", "name": "Desmond Valdez", "email": "desmond.valdez@city.example.gov"}
DOUGLAS = {"person_id": "p-douglas", "name": "Douglas Holloway", "email": "douglas.holloway@city.example.gov"}
HECTOR = {"person_id": "p-hector", "name": "Hector Moreau", "email": "hector.moreau@city.example.gov"}
STREETS = Team(department_code="STREETS", roles={"stat_partner": GORDON, "department_head": DESMOND, "oit_partner": None},
               deputy_mayor=DOUGLAS, managing_director=HECTOR)


def _on(asker: Asker, *, assignee=None, team=STREETS, chain=()):  # type: ignore[no-untyped-def]
    return on_ticket(asker, department_code="STREETS", assignee=assignee, chain=chain, team=team, verb="acknowledge")


def test_the_senior_team_matched_by_email_or_person_id():
    assert _on(Asker(email="gordon.nakamura@city.example.gov")).because == "stat_partner of STREETS"
    assert _on(Asker(email="GORDON.NAKAMURA@city.example.gov"))  # emails in any case
    assert _on(Asker(person_id="p-gordon", email="other@x.gov")).allowed


def test_the_chain_up_to_the_managing_director():
    assert _on(Asker(email=DESMOND["email"])).because == "department_head of STREETS"
    assert _on(Asker(email=DOUGLAS["email"])).because == "deputy_mayor"
    assert _on(Asker(person_id="p-hector")).because == "managing_director"


def test_the_assignee_even_from_outside_the_team():
    outsider = Asker(email="nadia.santiago@city.example.gov", person_id="p-nadia")
    assert not _on(outsider)
    assert _on(outsider, assignee={"person_id": "p-nadia", "name": "Nadia Santiago"}).because == "assignee"


def test_the_ticket_chain_counts_when_the_copy_has_no_team():
    chain = [{"level": 1, "role": "department_head", "person": DESMOND}, {"level": 0, "role": "stat_partner", "person": GORDON}]
    assert _on(Asker(email=DESMOND["email"]), team=None, chain=chain).because == "department_head"
    # a partner on the stored chain is not "up the chain": without the team copy only the chain counts
    assert not _on(Asker(email=GORDON["email"]), team=None, chain=chain)


def test_performance_office_and_admin_everywhere():
    assert _on(Asker(groups=frozenset({"citystat-performance_office"}))).because == "performance office"
    assert _on(Asker(admin=True)).because == "admin"


def test_everyone_else_reads_and_is_told_who_may():
    d = _on(Asker(email="someone@city.example.gov", groups=frozenset({"citystat-stat_partner", "citystat-dept-WATER"})))
    assert not d
    assert d.because == "only the STREETS senior team, the ticket's assignee or their chain may acknowledge this ticket"
    assert not _on(Asker())  # nothing known about the person: nothing matches


def test_department_and_office_rules():
    assert for_department(Asker(email=GORDON["email"]), department_code="STREETS", team=STREETS, verb="open a flag")
    refused = for_department(Asker(email="x@y.gov"), department_code="STREETS", team=STREETS, verb="open a flag")
    assert not refused and "STREETS senior team" in refused.because
    assert not office_only(Asker(email=DESMOND["email"]), verb="change escalation policies")
    assert office_only(Asker(groups=frozenset({"citystat-performance_office"})), verb="change escalation policies")
