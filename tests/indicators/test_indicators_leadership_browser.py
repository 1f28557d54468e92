"""Issue 22 checked as a person would: the city view in Chromium with the demo data. The first tile
is the city's worst red (critical first, then the largest miss) and names who holds its ticket, no
tile showing a value says "no report", each tile carries its year to date and trend, a cluster names
its deputy mayor, and axe-core finds nothing serious."""

import os

import httpx
import pytest
from ind_helpers import preload_departments
from page_helpers import served
from ticket_helpers import Feed, snap, team

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from citystat_common.demo import directory_rows
from citystat_common.events import make_event
from citystat_common.testing import TEST_KEYS
from indicators.demo import load_demo
from indicators.main import create_app

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]


async def _worst_red(client: httpx.AsyncClient) -> str:
    """Worked out from the API alone: critical reds first, then the largest miss of the latest period."""
    items = (await client.get("/indicators", params={"page_size": 500})).json()["items"]
    reds = []
    for i in items:
        if i["state"] != "red":
            continue
        rows = (await client.get(f"/indicators/{i['code']}/observations")).json()
        miss = max((r for r in rows), key=lambda r: r["period_start"])["miss"] if rows else None
        reds.append((not i["critical"], -(miss or 0.0), i["code"]))
    assert reds, "the demo has red figures"
    return min(reds)[2]


async def test_the_city_view_leads_with_the_worst_red(indicators_settings):
    from playwright.async_api import async_playwright

    app = create_app(indicators_settings)
    async with served(app) as base:
        await preload_departments(app, sorted({(r["department_code"], r["department_name"], r["cluster_code"],
                                                r["cluster_name"]) for r in directory_rows()}))
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await load_demo(client, {"admin": TEST_KEYS["admin"]})
            worst = await _worst_red(client)
            worst_id = (await client.get(f"/indicators/{worst}")).json()["id"]
        # who is on it: the worst red's ticket and the operations cluster's deputy mayor, through the consumer
        feed = Feed(app)
        await feed.deliver(snap("t-worst", worst_id, version=4, holder="Dana Whitfield", level=1,
                                role="department_head", action="Crew overtime approved"))
        for dept in sorted({r["department_code"] for r in directory_rows() if r["cluster_code"] == "OPERATIONS"}):
            await feed.deliver(make_event(team(dept, "OPERATIONS", "Douglas Holloway"), subject=dept),
                               "directory.changes")
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                await page.goto(f"{base}/dashboard?refresh=0")
                # the view is chosen in the filters, and stays in the URL
                await page.get_by_label("View").select_option("city")
                await page.wait_for_url("**view=city**")
                first = page.locator("a.tile").first
                assert await first.get_attribute("data-code") == worst
                assert "RED" in await first.inner_text() and "to date" in await first.inner_text()
                assert await first.evaluate("el => el.getBoundingClientRect().top < window.innerHeight")
                # the first red tile names who holds its ticket, in a link of its own to the ticket's page
                ticket = page.locator("li", has=first).locator("a.ticket")
                assert "Dana Whitfield" in await ticket.inner_text() and "level 1" in await ticket.inner_text()
                assert (await ticket.get_attribute("href")).endswith("/board/tickets/t-worst")
                tiles = page.locator("a.tile")
                for k in range(await tiles.count()):
                    tile = tiles.nth(k)
                    value = (await tile.locator(".val").inner_text()).strip()
                    if value != "\u2013":
                        assert "NO REPORT" not in await tile.inner_text(), await tile.get_attribute("data-code")
                    assert "better" in await tile.locator(".trend").inner_text() or \
                        "range" in await tile.locator(".trend").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.goto(f"{base}/dashboard?refresh=0")
                assert (v := await axe_violations(page)) == [], describe(v)
                # a deputy mayor's cluster: its departments in columns side by side
                await page.goto(f"{base}/dashboard?cluster=OPERATIONS&refresh=0")
                tops = await page.locator(".depts.side > section").evaluate_all(
                    "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
                assert len(tops) == 4 and len(set(tops)) == 1, tops
                assert "Deputy mayor: Douglas Holloway" in await page.locator("p.deputy").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.goto(f"{base}/dashboard?refresh=0")
                dept = await page.locator("h3.dept").first.get_attribute("id")
                await page.goto(f"{base}/dashboard/departments/{dept.removeprefix('d-')}/report")
                assert "Fiscal year to date" in await page.locator("thead").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
                if os.environ.get("INDICATORS_SCREENSHOT_DIR"):
                    for name, q in (("city", "view=city"), ("cluster", "cluster=OPERATIONS")):
                        await page.goto(f"{base}/dashboard?{q}&refresh=0")
                        await page.screenshot(path=os.path.join(os.environ["INDICATORS_SCREENSHOT_DIR"], f"{name}.png"),
                                              full_page=True)
            finally:
                await browser.close()
