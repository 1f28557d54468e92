"""Issue 22, one measure across departments, checked as a person would in Chromium: from a drill-down
"Compare across departments" opens the comparison, whose first row is the worst figure (worked out
from the API alone), the measure chooser keeps the choice in the URL, and axe-core finds nothing
serious or critical on the comparison, the chooser or the page for an unknown measure."""

import httpx
import pytest
from page_helpers import served
from test_indicators_compare import _vacancies

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from indicators.main import create_app

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]
RANK = {"red": 0, "yellow": 1, "no_report": 2, "baseline": 3, "green": 4}


async def _worst(client: httpx.AsyncClient, codes: list[str]) -> str:
    """From the API alone: the worst state; among reds and yellows critical first, then the largest miss."""
    ranked = []
    for code in codes:
        i = (await client.get(f"/indicators/{code}")).json()
        rows = (await client.get(f"/indicators/{code}/observations")).json()
        miss = max(rows, key=lambda r: r["period_start"])["miss"] if rows else None
        judged = i["state"] in ("red", "yellow")
        ranked.append((RANK[i["state"]], not (i["critical"] and judged), -(miss or 0.0) if judged else 0.0, code))
    return min(ranked)[3]


async def test_the_comparison_leads_with_the_worst_department(indicators_settings):
    from playwright.async_api import async_playwright

    app = create_app(indicators_settings)
    async with served(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await _vacancies(client, app)
            items = (await client.get("/indicators", params={"page_size": 500})).json()["items"]
            vacancies = [i["code"] for i in items if i["code"].split(".", 1)[1] == "vacancy"]
            assert len(vacancies) == 6
            worst = await _worst(client, vacancies)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                await page.goto(f"{base}/dashboard/indicators/PARKS.vacancy")
                await page.get_by_role("link", name="Compare across departments").click()
                await page.wait_for_url("**/dashboard/compare?measure=vacancy")
                rows = page.locator("table#compare tbody tr")
                assert await rows.count() == 6
                assert await rows.first.get_attribute("data-code") == worst
                assert "RED" in await rows.first.locator("td.state").inner_text()
                assert "FY" in await rows.first.locator("td.ytd").inner_text()
                assert await rows.first.evaluate("el => el.getBoundingClientRect().top < window.innerHeight")
                assert (v := await axe_violations(page)) == [], describe(v)
                # the chooser: a choice is a URL that can be bookmarked and sent
                await page.goto(f"{base}/dashboard/compare")
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.get_by_label("Measure").select_option("vacancy")
                await page.wait_for_url("**measure=vacancy")
                assert await page.locator("table#compare tbody tr").first.get_attribute("data-code") == worst
                missing = await page.goto(f"{base}/dashboard/compare?measure=no_such_measure")
                assert missing is not None and missing.status == 404
                assert "No department reports" in await page.get_by_role("alert").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
            finally:
                await browser.close()
