"""citystat_common.batched.in_order: a batch applied event by event with each event's own handler,
in delivery order, each under its own correlation id. No I/O (the unit of work is not touched)."""

import uuid

from citystat_common.batched import in_order
from citystat_common.events import PersonUpserted, SeniorTeamChanged, make_event
from citystat_common.logging import current_correlation_id


async def test_each_event_goes_to_its_own_handler_in_order_under_its_own_correlation_id():
    calls = []

    def handler(kind):
        async def handle(uow, envelope, payload):
            calls.append((kind, envelope.id, current_correlation_id()))
        return handle

    people = [make_event(PersonUpserted(person_id=str(uuid.uuid4()), name=n), subject=n, correlation_id=f"c-{n}")
              for n in ("Ada", "Bo")]
    team = make_event(SeniorTeamChanged(department_id="d1", department_code="STREETS", department_name="Streets", roles={}),
                      subject="STREETS", correlation_id="c-team")
    apply = in_order({"directory.person.upserted": handler("person"),
                      "directory.senior_team.changed": handler("team")})
    batch = [(people[0], None), (team, None), (people[1], None)]
    await apply(object(), batch)
    assert calls == [("person", people[0].id, "c-Ada"), ("team", team.id, "c-team"), ("person", people[1].id, "c-Bo")]
