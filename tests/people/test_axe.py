"""axe-core inside real Chromium: it finds what a person with a screen reader or keyboard cannot
get past (a form field without a label, an image button without a name), and a clean page passes."""

import pytest

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, have_browser

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]

BAD = """<!doctype html><html><head><title>t</title></head><body>
<form><input type="text" name="q"><button type="submit"><img src="x.png"></button></form></body></html>"""
GOOD = """<!doctype html><html lang="en"><head><title>Ticket</title></head><body><main><h1>Ticket</h1>
<form><label for="q">Note</label><input id="q" type="text" name="q"><button type="submit">Save note</button></form>
</main></body></html>"""


async def test_axe_finds_serious_violations_and_passes_a_clean_page():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.set_content(BAD)
            found = {v["id"] for v in await axe_violations(page)}
            assert {"label", "button-name"} <= found
            await page.set_content(GOOD)
            assert await axe_violations(page) == []
        finally:
            await browser.close()
