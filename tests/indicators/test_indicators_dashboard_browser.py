"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright
loads the dashboard with the demo data, checks each tile's colour against the API's status,
opens a drill-down by keyboard and saves screenshots."""

import os

import httpx
import pytest
from ind_helpers import preload_departments
from page_helpers import served

from citystat_common.demo import directory_rows
from citystat_common.testing import TEST_KEYS
from indicators.demo import load_demo
from indicators.main import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# the tile backgrounds of dashboard.py, as the browser reports them
COLOURS = {"red": "rgb(179, 38, 30)", "yellow": "rgb(245, 197, 24)", "green": "rgb(30, 123, 52)",
           "no_report": "rgb(95, 99, 104)", "baseline": "rgb(232, 240, 254)"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (make test installs it)"),
]


async def client_get(base, path):
    async with httpx.AsyncClient(base_url=base) as c:
        return (await c.get(path)).json()


async def test_dashboard_in_chromium(indicators_settings, tmp_path):
    from playwright.async_api import async_playwright

    app = create_app(indicators_settings)
    async with served(app) as base:
        depts = {(r["department_code"], r["department_name"], r["cluster_code"], r["cluster_name"])
                 for r in directory_rows()}
        await preload_departments(app, sorted(depts))
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            summary = await load_demo(client, {"admin": TEST_KEYS["admin"]})
            again = await load_demo(client, {"admin": TEST_KEYS["admin"]})  # idempotent
            assert "(0 new)" in again
            items = (await client.get("/indicators", params={"page_size": 500})).json()["items"]
        api_status = {i["code"]: i["status"] for i in items}
        api_state = {i["code"]: i["state"] for i in items}
        assert set(api_status.values()) == {"red", "yellow", "green", "grey"}, summary

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 1000})
                await page.goto(f"{base}/dashboard?refresh=0")
                tiles = page.locator("a.tile")
                assert await tiles.count() == len(api_status)
                for i in range(await tiles.count()):
                    tile = tiles.nth(i)
                    code = await tile.get_attribute("data-code")
                    status = api_status[code]
                    assert await tile.get_attribute("data-status") == status
                    state = api_state[code]
                    bg = await tile.evaluate("el => getComputedStyle(el).backgroundColor")
                    assert bg == COLOURS[state], (code, state, bg)
                    label = await tile.inner_text()  # what a screen reader reads too
                    assert {"red": "RED", "yellow": "YELLOW", "green": "GREEN", "no_report": "NO REPORT",
                            "baseline": "BUILDING A BASELINE"}[state] in label
                # the override's reason is on the tile
                dhs = page.locator('a.tile[data-code="DHS.placement_24h"]')
                assert "New intake centre" in await dhs.inner_text()
                await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                if os.environ.get("INDICATORS_SCREENSHOT_DIR"):
                    await page.screenshot(path=os.path.join(os.environ["INDICATORS_SCREENSHOT_DIR"], "dashboard.png"), full_page=True)
                # filters: critical only
                await page.check("#f-critical")
                await page.wait_for_url("**critical=true**")
                codes = await page.locator("a.tile").evaluate_all("els => els.map(e => e.dataset.code)")
                assert codes and all(c in {i["code"] for i in items if i["critical"]} for c in codes)
                # keyboard: tab to the first red tile and open its drill-down with Enter
                await page.goto(f"{base}/dashboard?refresh=0")
                first_red = page.locator('a.tile[data-status="red"]').first
                code = await first_red.get_attribute("data-code")
                for _ in range(200):
                    await page.keyboard.press("Tab")
                    if await page.evaluate("document.activeElement.dataset.code") == code:
                        break
                else:
                    raise AssertionError("the red tile is not reachable by keyboard")
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"**/dashboard/indicators/{code}")
                assert await page.locator("#history-chart svg circle").count() >= 12
                assert "RED" in await page.locator("#current-status").inner_text()
                await page.screenshot(path=str(tmp_path / "drilldown.png"), full_page=True)
                # it refreshes itself: a new value turns a yellow tile red without a reload, focus kept
                await page.goto(f"{base}/dashboard?refresh=1")
                tile = page.locator('a.tile[data-code="WATER.main_breaks_24h"]')
                assert await tile.get_attribute("data-status") == "yellow"
                await tile.focus()
                latest = (await client_get(base, "/indicators/WATER.main_breaks_24h"))["latest_period"]
                async with httpx.AsyncClient(base_url=base) as c:
                    r = await c.post("/indicators/WATER.main_breaks_24h/observations", headers={"X-API-Key": TEST_KEYS["admin"]},
                                     json={"period": latest, "value": 60})
                    assert r.status_code == 200, r.text
                await page.wait_for_selector('a.tile[data-code="WATER.main_breaks_24h"][data-status="red"]', timeout=15_000)
                assert await page.evaluate("document.activeElement.dataset.code") == "WATER.main_breaks_24h"
                if os.environ.get("INDICATORS_SCREENSHOT_DIR"):
                    await page.screenshot(path=os.path.join(os.environ["INDICATORS_SCREENSHOT_DIR"], "drilldown.png"), full_page=True)
            finally:
                await browser.close()
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        assert (tmp_path / "drilldown.png").stat().st_size > 5_000
