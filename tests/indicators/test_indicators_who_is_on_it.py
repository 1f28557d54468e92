"""Issue 22, "who is on it": a red or yellow tile names its open ticket (status, holder, level, last
action, a link to the ticket's page in escalation), from the local copy fed by
escalation.ticket.updated through the consumer: redelivered and older snapshots change nothing, a
resolved ticket leaves the tile, a flag opened by hand about no indicator is not kept. An override
names its author. The cluster view names its deputy mayor (directory.senior_team.changed)."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from ind_helpers import W, create, month, observe, target
from ticket_helpers import T0, Feed, snap, team

from citystat_common.events import make_event
from indicators.models import TicketCopy


def _tile_with_ticket(html: str, code: str) -> str:
    m = re.search(rf'<li><a class="tile[^"]*"[^>]*data-code="{re.escape(code)}".*?</li>', html, re.S)
    assert m, code
    return m.group(0)


async def _red_and_green(client):
    red = await create(client, code="STREETS.potholes")
    await target(client, "STREETS.potholes", 90)
    await observe(client, "STREETS.potholes", month(1), 60)
    green = await create(client, code="STREETS.lights")
    await target(client, "STREETS.lights", 90)
    await observe(client, "STREETS.lights", month(1), 95)
    return red, green


async def test_the_copy_follows_the_newest_snapshot_and_the_tile_names_who_is_on_it(client, app):
    red, green = await _red_and_green(client)
    feed = Feed(app)
    tid = str(uuid.uuid4())
    assert await feed.deliver(snap(tid, red["id"], version=3)) == "processed"
    later = snap(tid, red["id"], version=9, status="in_progress", holder="Rosa Diaz", level=1,
                 role="department_head", action="Second crew on night shift", at=T0 + timedelta(days=2))
    assert await feed.deliver(later) == "processed"
    assert await feed.deliver(later) == "duplicate"  # the same event again
    # an older snapshot arriving late (a replay: a new event id) changes nothing
    assert await feed.deliver(snap(tid, red["id"], version=5, status="acknowledged", holder="Someone Else")) == "processed"

    board = (await client.get("/dashboard")).text
    tile = _tile_with_ticket(board, "STREETS.potholes")
    assert "Rosa Diaz" in tile and "Someone Else" not in tile and "Carmen" not in tile
    assert "Ticket in progress" in tile and "level 1 (department head)" in tile
    assert "last action: Second crew on night shift (2026-11-25)" in tile
    assert f'href="http://127.0.0.1:8003/board/tickets/{tid}"' in tile  # the default escalation address
    # the ticket is a link beside the tile's, never inside it
    assert re.search(r'</a><a class="ticket status-red" href="[^"]+" data-ticket="', tile)

    drill = (await client.get("/dashboard/indicators/STREETS.potholes")).text
    assert 'id="ticket"' in drill and "Rosa Diaz" in drill and f"/board/tickets/{tid}" in drill

    # a ticket on a green figure is not shown: the tile is not red or yellow
    other = str(uuid.uuid4())
    await feed.deliver(snap(other, green["id"], version=1))
    assert "data-ticket" not in _tile_with_ticket((await client.get("/dashboard")).text, "STREETS.lights")

    # resolved: the tile no longer names it, and a late open snapshot does not bring it back
    await feed.deliver(snap(tid, red["id"], version=12, status="resolved", holder="Rosa Diaz"))
    await feed.deliver(snap(tid, red["id"], version=10, status="in_progress", holder="Rosa Diaz"))
    tile = _tile_with_ticket((await client.get("/dashboard")).text, "STREETS.potholes")
    assert "data-ticket" not in tile and "Rosa Diaz" not in tile
    assert 'id="ticket"' not in (await client.get("/dashboard/indicators/STREETS.potholes")).text


async def test_a_flag_by_hand_about_no_indicator_is_not_kept(client, app):
    feed = Feed(app)
    tid = str(uuid.uuid4())
    assert await feed.deliver(snap(tid, None, version=1, source="manual")) == "processed"
    async with app.state.ctx.uow() as uow:
        assert (await uow.session.execute(sa.select(sa.func.count()).select_from(TicketCopy))).scalar_one() == 0


async def test_the_escalation_address_is_a_setting(client, app):
    red, _ = await _red_and_green(client)
    app.state.ctx.settings.escalation_url = "https://escalation.city.example.gov/"
    tid = str(uuid.uuid4())
    await Feed(app).deliver(snap(tid, red["id"], version=1))
    tile = _tile_with_ticket((await client.get("/dashboard")).text, "STREETS.potholes")
    assert f'href="https://escalation.city.example.gov/board/tickets/{tid}"' in tile
    assert "no action logged yet" in tile and "Carmen Villanueva" in tile


async def test_an_override_names_its_author_on_the_tile(client):
    await create(client, code="STREETS.potholes")
    await target(client, "STREETS.potholes", 90)
    await observe(client, "STREETS.potholes", month(1), 60)
    until = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    r = await client.put("/indicators/STREETS.potholes/override", headers=W,
                         json={"status": "yellow", "reason": "Crews redeployed to the storm", "expires_at": until})
    assert r.status_code in (200, 201), r.text
    tile = _tile_with_ticket((await client.get("/dashboard")).text, "STREETS.potholes")
    assert re.search(r"Override by key \w+: Crews redeployed to the storm", tile), tile


async def test_the_cluster_view_names_its_deputy_mayor(client, app):
    await create(client, code="STREETS.potholes")
    await observe(client, "STREETS.potholes", month(1), 60)
    await create(client, code="POLICE.response", department_code="POLICE")
    await observe(client, "POLICE.response", month(1), 7)
    feed = Feed(app)
    old = make_event(team("STREETS", "OPERATIONS", "Former Deputy"), subject="streets")
    new = make_event(team("STREETS", "OPERATIONS", "Douglas Holloway"), subject="streets")
    new.time = old.time + timedelta(seconds=5)
    await feed.deliver(make_event(team("POLICE", "SAFETY", "Angela Brooks"), subject="police"), "directory.changes")
    await feed.deliver(new, "directory.changes")
    await feed.deliver(old, "directory.changes")  # older, arriving late: changes nothing
    ops = (await client.get("/dashboard", params={"cluster": "OPERATIONS"})).text
    assert '<p class="deputy" id="deputy-OPERATIONS">Deputy mayor: Douglas Holloway</p>' in ops
    assert "Former Deputy" not in ops and "Angela Brooks" not in ops
    everyone = (await client.get("/dashboard")).text
    assert "Deputy mayor: Douglas Holloway" in everyone and "Deputy mayor: Angela Brooks" in everyone
