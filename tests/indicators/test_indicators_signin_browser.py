"""Issue 17 in a real browser: the STREETS stat partner signs in through the city's identity
provider (the whole redirect flow, in Chromium), sets an override on the drill-down with the plain
HTML form and sees their name in its history; the pages pass axe-core; a post without the form's
token gets 403, and a stat partner of another department sees no form and is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ind_helpers import W, indicator, month, preload_departments
from page_helpers import served, sign_in, sign_in_settings

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from citystat_common.devidp import ProviderProcess
from indicators.main import create_app

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]
GORDON = "gordon.nakamura@city.example.gov"  # the STREETS stat partner
TERESA = "teresa.novak@city.example.gov"  # the WATER stat partner


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


async def test_a_stat_partner_signs_in_and_overrides_from_the_drill_down(indicators_settings, provider):
    from playwright.async_api import async_playwright

    settings = sign_in_settings(indicators_settings, provider.issuer)
    assert settings.pages_sign_in
    app = create_app(settings)
    async with served(app, settings.port) as base:
        await preload_departments(app)
        async with httpx.AsyncClient(base_url=base, headers=W) as api:
            for code, dept in (("STREETS.potholes", "STREETS"), ("WATER.breaks", "WATER")):
                assert (await api.post("/indicators", json=indicator(code=code, department_code=dept))).status_code == 201
                r = await api.put(f"/indicators/{code}/targets",
                                  json={"targets": [{"period": month(3), "value": 90, "applies": "onward"}]})
                assert r.status_code == 200, r.text
                for k, v in ((3, 60), (2, 55), (1, 50)):
                    assert (await api.post(f"/indicators/{code}/observations",
                                           json={"period": month(k), "value": v})).status_code == 200
            assert (await api.get("/dashboard")).status_code == 303  # a key is not a person on a page
        drill = "/dashboard/indicators/STREETS.potholes"
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await sign_in(page, base, GORDON)
                assert await page.locator('[data-code="STREETS.potholes"]').count() == 1
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.goto(base + drill)
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.get_by_label("Set the status to").select_option("yellow")
                await page.get_by_label("Reason").fill("Crews are back from the storm; the backlog clears this month")
                await page.get_by_role("button", name="Set override").click()
                await page.wait_for_url(f"{base}{drill}#history")
                assert "override by Gordon Nakamura" in await page.locator("#current-status").inner_text()
                history = await page.locator("#history + table").inner_text()
                assert "Gordon Nakamura" in history and "Crews are back" in history
                # a blank reason (the browser's own check lets spaces through) comes back in words
                await page.get_by_label("Reason").fill("      ")
                await page.get_by_role("button", name="Set override").click()
                assert "Reason: " in await page.locator("#judge-error").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
                # a post without the form's token (what another site could make the browser send): 403
                forged = await page.request.post(base + drill + "/override", form={
                    "status": "green", "reason": "forged from elsewhere", "until": (datetime.now(UTC) + timedelta(
                        days=5)).date().isoformat()}, max_redirects=0)
                assert forged.status == 403 and "expired" in await forged.text()
                await page.get_by_label("Why the override ends").fill("the crews report the backlog is gone")
                await page.get_by_role("button", name="Clear override").click()
                await page.wait_for_url(f"{base}{drill}#history")
                assert "override" not in await page.locator("#current-status").inner_text()

                other = await (await browser.new_context()).new_page()
                await sign_in(other, base, TERESA, drill)
                assert await other.locator("#override-form").count() == 0  # not her department
                await other.goto(base + "/dashboard/indicators/WATER.breaks")
                token = await other.locator('#override-form input[name="csrf"]').get_attribute("value")
                refused = await other.request.post(base + drill + "/override", form={
                    "csrf": token, "status": "green", "reason": "not my department", "until": "2099-01-01"},
                    max_redirects=0)
                assert refused.status == 403 and "own department" in await refused.text()
            finally:
                await browser.close()
        async with httpx.AsyncClient(base_url=base) as anon:
            overrides = (await anon.get("/indicators/STREETS.potholes/overrides")).json()
        assert [(o["created_by"], o["cleared_by"]) for o in overrides] == [("Gordon Nakamura", "Gordon Nakamura")]
