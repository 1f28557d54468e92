"""The ticket board in real headless Chromium: columns by level, severity colors with text labels,
the timeline on click and from the keyboard, nothing loaded from outside."""

from __future__ import annotations

import os
import threading
import time

import pytest
import uvicorn
from esc_helpers import OPS, breach, closed_port_url, ny, person

from citystat_common.localbroker import free_port
from escalation.main import create_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (make test installs it)"),
]


class ServerThread:
    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the board server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.parametrize("db_kind", ["sqlite"])  # the page is the same on both databases: one browser run
async def test_board_shows_levels_severity_and_timeline(harness):
    from playwright.async_api import async_playwright

    h = harness
    await h.deliver(breach(indicator="potholes", episode="p1", magnitude=0.6, name="Pothole repair time"))
    await h.deliver(breach(indicator="leaks", episode="l1", department="WATER", magnitude=0.01, name="Leak response"))
    h.clock.set(ny(2026, 11, 23, 14, 0))
    assert len(await h.scheduler().run_once()) == 1  # potholes (critical) climbs to level 1
    r = await h.client.post("/tickets", json={"department_code": "LIBRARY", "title": "Branch hours cut",
                                              "reason": "residents report closed branches", "severity": 2}, headers=OPS)
    assert r.status_code == 201
    [potholes] = await h.tickets(indicator_id="potholes")

    app = create_app(h.settings.model_copy(update={"directory_url": closed_port_url()}), clock=h.clock,
                     check_worker=False)
    with ServerThread(app) as base:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            try:
                page = await browser.new_page()
                outside: list[str] = []
                errors: list[str] = []
                page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(base) else None)
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(f"{base}/board")
                assert await page.title() == "CityStat escalation board"
                headings = await page.locator("section.col h2").all_inner_texts()
                assert [x.split(" (")[0] for x in headings] == [
                    "Level 0 · Senior-team partner", "Level 1 · Department head", "Level 2 · Deputy mayor",
                    "Level 3 · Managing director"]
                level1 = page.locator('section[data-level="1"] a.card')
                assert await level1.count() == 1
                card = level1.first
                text = await card.inner_text()
                assert "Critical" in text and "Pothole repair time" in text
                assert person("STREETS", "oit_partner") in text
                assert "sev-1" in (await card.get_attribute("class"))
                level0 = page.locator('section[data-level="0"] a.card')
                assert await level0.count() == 2
                labels = await level0.locator(".badge").all_inner_texts()
                assert sorted(labels) == ["High", "Low"]
                # colors differ by severity, and each color comes with its text label
                c1 = await card.evaluate("el => getComputedStyle(el).borderLeftColor")
                c4 = await page.locator("a.card.sev-4").evaluate("el => getComputedStyle(el).borderLeftColor")
                assert c1 != c4

                await card.click()
                detail = page.locator("#detail")
                await detail.locator("li[data-kind='escalated']").wait_for(timeout=10_000)
                assert await card.get_attribute("aria-expanded") == "true"
                assert "Pothole repair time" in await detail.locator("h2").inner_text()
                timeline = await detail.locator("ol.timeline li").all_inner_texts()
                assert any("opened" in x for x in timeline) and any("Escalated to level 1" in x for x in timeline)
                assert potholes["id"] == await detail.locator("article").get_attribute("data-ticket")

                # keyboard: focus the library card and press Enter
                library = page.locator("a.card", has_text="Branch hours cut")
                await library.focus()
                await page.keyboard.press("Enter")
                await detail.locator("h2", has_text="Branch hours cut").wait_for(timeout=10_000)
                assert await card.get_attribute("aria-expanded") == "false"
                assert "residents report closed branches" in await detail.inner_text()
                await page.keyboard.press("Escape")
                assert await library.get_attribute("aria-expanded") == "false"

                # the filter is a plain GET form
                await page.goto(f"{base}/board?severity=4")
                assert await page.locator("a.card").count() == 1
                assert outside == [] and errors == []
            finally:
                await browser.close()


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_a_ticket_opened_by_the_worker_appears_on_an_open_board_without_a_reload(harness):
    """The board long-polls its columns: a breach the consumer turns into a ticket shows up within
    moments (the columns used to be fetched again every 30 s), and the open timeline stays open."""
    from playwright.async_api import async_playwright

    h = harness
    await h.deliver(breach(indicator="potholes", episode="p1", name="Pothole repair time"))
    app = create_app(h.settings.model_copy(update={"directory_url": closed_port_url()}), clock=h.clock,
                     check_worker=False)
    with ServerThread(app) as base:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                                "--disable-gpu"])
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(f"{base}/board")
                cards = page.locator("a.card")
                assert await cards.count() == 1
                await cards.first.click()
                await page.locator("#detail h2", has_text="Pothole repair time").wait_for(timeout=10_000)
                await page.wait_for_timeout(2_500)  # the script is now waiting on its long poll
                await h.deliver(breach(indicator="leaks", episode="l1", department="WATER", name="Leak response"))
                await page.locator("a.card", has_text="Leak response").wait_for(timeout=10_000)
                assert await cards.count() == 2
                assert (await page.locator("#summary").inner_text()).startswith("2 open tickets")
                opened = page.locator("a.card", has_text="Pothole repair time")
                assert await opened.get_attribute("aria-expanded") == "true"  # still the one shown beside
                assert errors == []
            finally:
                await browser.close()
