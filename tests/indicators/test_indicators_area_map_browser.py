"""Stat by area in Chromium (issue 21): a council member opens the dashboard of their ward and sees the
map of the wards, each painted in its figure's status colour as the API states it, with the table
beside it; choosing another figure recolours the map (the choice is in the URL); a ward in the table
opens that ward's dashboard; axe-core finds nothing serious or critical on the ward's dashboard, the
map of every ward and the printable report. Screenshots go to INDICATORS_SCREENSHOT_DIR when set."""

import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from area_helpers import area_app, area_events, area_settings, make_area_requests, records
from page_helpers import served
from test_indicators_area_stat import _runner

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from indicators.dashboard_tiles import STATUS_FILL

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i : i + 2], 16) for i in (0, 2, 4)))


def _this_month(per_ward: dict[str, int]) -> list[dict]:
    """Requests closed on time today: the wards differ in this period's share within the service level."""
    now = datetime.now(UTC)
    return [{"id": f"SR-NOW-{ward}-{k}", "service": "POTHOLE", "dept": ("STREETS", "WATER")[k % 2], "ward": ward,
             "district": "A", "requested": now - timedelta(hours=3), "expected": now + timedelta(days=1),
             "closed": now - timedelta(hours=1), "fcr": False}
            for ward, n in per_ward.items() for k in range(n)]


async def _shot(page, tmp_path, name):
    await page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("INDICATORS_SCREENSHOT_DIR"):
        await page.screenshot(path=os.path.join(os.environ["INDICATORS_SCREENSHOT_DIR"], name), full_page=True)


async def test_a_wards_dashboard_with_its_map_in_chromium(indicators_settings, tmp_path):
    from playwright.async_api import async_playwright

    app = area_app(area_settings(indicators_settings))
    async with served(app) as base:
        from ind_helpers import preload_departments

        await preload_departments(app)
        runner = _runner(app, batched=True)
        reqs = make_area_requests(seed=3, n=120) + _this_month({"1": 60, "2": 9, "North & East": 14})
        assert set(await runner.process_batch(records(area_events(reqs)))) == {"processed"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            state = {w: (await client.get(f"/indicators/311-area.ward.{w}.{m}")).json()["state"]
                     for w in ("1", "2", "3") for m in ("closed_within_sla", "backlog")[:1]}
            backlog = {w: (await client.get(f"/indicators/311-area.ward.{w}.backlog")).json()["state"]
                       for w in ("1", "2", "3")}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(f"{base}/dashboard?area=ward:2")
                assert await page.get_by_role("heading", level=1).inner_text() == "Ward Old Town (2)"
                area_map = page.get_by_role("img", name="Wards coloured by 311 share closed within the service level")
                assert await area_map.is_visible()
                for ward, s in state.items():
                    fill = await page.locator(f'svg.area-map path[data-code="{ward}"]').evaluate(
                        "el => getComputedStyle(el).fill")
                    assert fill == _rgb(STATUS_FILL[s]), (ward, s, fill)
                table = page.locator("table#area-table")
                assert await table.locator("tbody tr").count() == 4
                assert "Old Town" in await table.locator("tr.chosen").inner_text()
                box_map, box_table = await area_map.bounding_box(), await table.bounding_box()
                assert box_table["x"] >= box_map["x"] + box_map["width"] - 1  # beside the map, not under it
                assert await page.locator("#area-departments section").count() == 2
                assert (v := await axe_violations(page)) == [], describe(v)
                await _shot(page, tmp_path, "area-dashboard.png")

                await page.get_by_label("Colour the map by").select_option("backlog")
                await page.wait_for_url("**metric=backlog**")
                for ward, s in backlog.items():
                    fill = await page.locator(f'svg.area-map path[data-code="{ward}"]').evaluate(
                        "el => getComputedStyle(el).fill")
                    assert fill == _rgb(STATUS_FILL[s])
                await table.get_by_role("link", name="Harbour").click()
                await page.wait_for_url("**area=ward%3A3**")
                assert await page.get_by_role("heading", level=1).inner_text() == "Ward Harbour (3)"

                await page.goto(f"{base}/dashboard/areas/ward?metric=median_days_to_close&department=WATER")
                assert await page.locator("svg.area-map path").count() == 4
                assert (v := await axe_violations(page)) == [], describe(v)
                await _shot(page, tmp_path, "area-map.png")
                await page.goto(f"{base}/dashboard/areas/report?area=ward:2")
                assert await page.locator("table#indicators tbody tr").count() > 3
                assert (v := await axe_violations(page)) == [], describe(v)
                await _shot(page, tmp_path, "area-report.png")
            finally:
                await browser.close()
