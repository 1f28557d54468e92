"""Issue 17 in real headless Chromium: a STREETS 311 staff member signs in through the real local
provider (the whole redirect flow), files a call on the call-taker's page by keyboard, finds it in the
department queue, acknowledges and closes it, and reads their own name in its history; both pages
pass axe-core (no serious or critical violations), also with errors showing; nothing is loaded from
outside."""

import pytest
from pages_helpers import NADIA, signed_in_server

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from citystat_common.devidp import ProviderProcess

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_browser(), reason="make test installs Chromium and axe-core")]


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


async def _no_violations(page, where: str) -> None:
    found = await axe_violations(page)
    assert found == [], f"{where}: {describe(found)}"


@pytest.mark.parametrize("db_kind", ["sqlite"])  # the pages are the same on both databases: one browser run
async def test_a_streets_311_staff_member_files_acknowledges_and_closes_from_the_pages(settings, provider):
    from playwright.async_api import async_playwright

    with signed_in_server(settings, provider.issuer) as server:
        base = server.url
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                outside: list[str] = []
                # what our pages load (the provider's own sign-in page is not ours: it fetches a stylesheet)
                page.on("request", lambda req: outside.append(req.url)
                        if req.frame.url.startswith(base) and not req.url.startswith((base, provider.issuer)) else None)

                # sign in: the page sends the browser to the provider, the person chooses their email
                await page.goto(f"{base}/staff/call")
                assert page.url.startswith(provider.issuer)
                await page.get_by_placeholder("sub").fill(NADIA)
                await page.get_by_role("button", name="Authorize").click()
                await page.wait_for_url(f"{base}/staff/call")
                assert "Signed in as Nadia Santiago" in await page.locator("header").inner_text()
                await _no_violations(page, "call page, no service chosen")

                # choose the service by keyboard: the plain GET form reloads the page for it
                await page.get_by_label("Service the caller needs").focus()
                await page.get_by_label("Service the caller needs").select_option("POTHOLE")
                await page.keyboard.press("Tab")
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{base}/staff/call?service_code=POTHOLE")
                assert "We aim to resolve this within 3 business days" in await page.locator("#promise").inner_text()
                await _no_violations(page, "call page, pothole form")

                # file without the required answers: errors beside the fields, axe still clean
                await page.get_by_role("button", name="File the request").click()
                assert await page.locator("#attr-size-error").inner_text() == "This answer is required."
                assert await page.get_by_label("How large is the pothole? (required)").get_attribute("aria-invalid") == "true"
                await _no_violations(page, "call page with errors")

                await page.get_by_label("How large is the pothole? (required)").select_option("large")
                await page.get_by_label("Address or nearest intersection (required)").fill("1400 John F Kennedy Blvd")
                await page.get_by_label("What the caller reports").fill("Deep hole in the right lane")
                await page.get_by_label("Caller's phone number").fill("215-555-0142")
                await page.get_by_label("Caller's phone number").press("Enter")  # submits, as Enter in a field does
                filed = page.locator("#filed")
                await filed.wait_for()
                number = (await filed.locator("h2").inner_text()).split()[1]
                assert "Expected by" in await filed.inner_text()

                # the queue: find it, acknowledge, close with a note
                await page.get_by_role("link", name="Department queue").click()
                await page.wait_for_url(f"{base}/staff/queue")
                card = page.locator(f"#request-{number}")
                assert "Received by Nadia Santiago" in await card.locator("ol.history").inner_text()
                await _no_violations(page, "queue")
                await card.get_by_role("button", name="Acknowledge").click()
                assert f"Request {number} acknowledged." in await page.locator("#done").inner_text()
                card = page.locator(f"#request-{number}")
                assert "Acknowledged" in await card.locator(".status").inner_text()
                await card.get_by_label("Closing reason").select_option("fixed")
                await card.get_by_label("Closing note (the caller sees it)").fill("Patched this morning.")
                await card.get_by_role("button", name=f"Close request {number}").click()
                assert f"Request {number} closed." in await page.locator("#done").inner_text()
                history = await page.locator(f"#request-{number} ol.history").inner_text()
                assert "Acknowledged by Nadia Santiago" in history
                assert "Closed by Nadia Santiago: Patched this morning." in history

                # the filters are in the URL
                await page.goto(f"{base}/staff/queue?status=closed&service_code=POTHOLE")
                assert await page.locator(f"#request-{number}").count() == 1
                await page.goto(f"{base}/staff/queue?status=open")
                assert await page.locator(f"#request-{number}").count() == 0
                await _no_violations(page, "queue, filtered")
                assert outside == []
            finally:
                await browser.close()
