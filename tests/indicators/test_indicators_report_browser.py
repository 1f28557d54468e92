"""Issue 22, the department report as its readers use it, in Chromium: the STREETS stat partner signs
in through the city's identity provider and writes the department's account of the month with the
form on the report (their name on it); the report prints on A4 and on Letter with no column cut off
(every cell within the printable width, checked with print media at that width, and a PDF of each);
axe-core finds nothing serious or critical; a stat partner of another department sees no form and
is refused."""

from __future__ import annotations

import re

import httpx
import pytest
from ind_helpers import W, indicator, month, preload_departments
from page_helpers import served, sign_in, sign_in_settings

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from citystat_common.devidp import ProviderProcess
from citystat_common.testing import auth
from indicators.main import create_app

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]
GORDON = "gordon.nakamura@city.example.gov"  # the STREETS stat partner
TERESA = "teresa.novak@city.example.gov"  # the WATER stat partner
MM_PER_PX = 25.4 / 96
PAGE_MARGIN_MM = 12  # the report's @page margin
PAPER_WIDTH_MM = {"A4": 210.0, "Letter": 215.9}


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


async def _department(api: httpx.AsyncClient) -> None:
    long_names = ["Average number of calendar days from a resident's pothole report to the completed repair",
                  "Percentage of street lights repaired within the service level agreement of ten days",
                  "Cost per lane mile resurfaced including materials, labour and contracted paving crews"]
    for k, name in enumerate(long_names):
        code = f"STREETS.m{k}"
        body = indicator(code=code, name=name, unit=("duration", "percentage", "currency")[k], critical=k != 2,
                         direction=("down", "up", "down")[k])
        assert (await api.post("/indicators", json=body)).status_code == 201
        # every column filled, with the widest figures a city has (a year's spending: hundreds of millions)
        rows = [{"indicator_code": code, "period": month(j),
                 "value": (1234.5 + 97 * j, 40 + j % 50, 81_234_567.5 + 97 * j)[k]} for j in range(1, 48)]
        assert (await api.post("/observations/bulk", json=rows)).status_code == 200
    r = await api.put("/departments/STREETS/statement", headers=auth("admin"), json={
        "what_we_do": "The Streets Department keeps the city's streets and sidewalks safe and in good repair.",
        "services": [{"service": "Maintain the streets", "goals": [
            {"goal": "Repair potholes and street lights promptly", "indicators": ["STREETS.m0", "STREETS.m1"]},
            {"goal": "Resurface streets at a fair cost", "indicators": ["STREETS.m2"]}]}]})
    assert r.status_code == 200, r.text


async def _fits_the_paper(page, paper: str) -> None:
    """Laid out for print at the printable width of ``paper``: no cell of the table reaches past it."""
    width_px = int((PAPER_WIDTH_MM[paper] - 2 * PAGE_MARGIN_MM) / MM_PER_PX)
    await page.set_viewport_size({"width": width_px, "height": 1000})
    await page.emulate_media(media="print")
    overflow = await page.evaluate("""(w) => {
        const out = [];
        for (const el of document.querySelectorAll('table.mmr th, table.mmr td, table.mmr')) {
            const r = el.getBoundingClientRect();
            if (r.width > 0 && (r.right > w + 0.5 || r.left < -0.5)) out.push([el.tagName, el.textContent.slice(0, 40), r.left, r.right]);
        }
        if (document.documentElement.scrollWidth > w) out.push(['page', 'scrollWidth', 0, document.documentElement.scrollWidth]);
        return out;
    }""", width_px)
    assert overflow == [], (paper, width_px, overflow)
    for chrome in ("#narrative-form", "header", "form.period"):  # what is for the screen only
        assert await page.locator(chrome).is_hidden(), chrome
    pdf = await page.pdf(format=paper, print_background=True)
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    assert pages >= 1, paper
    await page.emulate_media(media="screen")


async def test_the_report_is_written_printed_and_readable(indicators_settings, provider):
    from playwright.async_api import async_playwright

    settings = sign_in_settings(indicators_settings, provider.issuer)
    app = create_app(settings)
    report = "/dashboard/departments/STREETS/report"
    async with served(app, settings.port) as base:
        await preload_departments(app)
        async with httpx.AsyncClient(base_url=base, headers=W) as api:
            await _department(api)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await sign_in(page, base, GORDON, report)
                assert await page.locator("tr[data-code]").count() == 3
                # the star of a critical indicator, in words for a screen reader
                assert await page.locator("tr[data-code] th", has_text="(critical indicator)").count() == 2
                assert (v := await axe_violations(page)) == [], describe(v)
                await page.get_by_label(re.compile("How the department performed")).fill(
                    "Crews cleared the winter backlog.\n\nTwo paving contracts started late.")
                await page.get_by_role("button", name="Save the account").click()
                await page.wait_for_url(re.compile(r".*/report\?period=\d{4}-\d{2}#narrative$"))
                narrative = await page.locator("#narrative").inner_text()
                assert "Two paving contracts started late." in narrative and "Written by Gordon Nakamura" in narrative
                # spaces only (the browser's own check lets them through) come back in words
                await page.get_by_label(re.compile("How the department performed")).fill("    ")
                await page.get_by_role("button", name="Save the account").click()
                assert "The account: " in await page.locator("#narrative-error").inner_text()
                assert (v := await axe_violations(page)) == [], describe(v)
                for paper in ("A4", "Letter"):
                    await _fits_the_paper(page, paper)

                other = await (await browser.new_context()).new_page()
                await sign_in(other, base, TERESA, report)
                assert await other.locator("#narrative-form").count() == 0  # not her department
                token = await page.locator('#narrative-form input[name="csrf"]').get_attribute("value")
                forged = await other.request.post(base + report + "/narrative", form={
                    "csrf": token or "", "period": month(0), "text": "not my department"}, max_redirects=0)
                assert forged.status == 403
            finally:
                await browser.close()
        async with httpx.AsyncClient(base_url=base) as anon:
            items = (await anon.get("/departments/STREETS/narratives")).json()["items"]
        assert [(n["written_by"], n["written_by_email"]) for n in items] == [("Gordon Nakamura", GORDON)]
