"""Owners act from the pages, in real headless Chromium, signed in through the real local identity
provider (the whole redirect flow): the mail's link opens the ticket after sign-in; the STREETS stat
partner finds the pothole ticket under "My tickets", acknowledges it, logs an action and resolves it,
and the timeline names him; axe-core finds no serious or critical violation; a person outside the
team is offered no forms and a forged post is refused; a post without its CSRF token is refused."""

from __future__ import annotations

import asyncio
import email.policy
import html
import re
from email import message_from_bytes

import pytest
from esc_helpers import Harness, breach, closed_port_url, demo_email, esc_settings, make_harness, seed_people

from citystat_common.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, have_browser
from citystat_common.db import session_factory
from citystat_common.devidp import ProviderProcess
from citystat_common.devmail import body_text, serve
from citystat_common.localbroker import free_port
from citystat_common.testing import ThreadServer, app_client
from citystat_common.uow import UnitOfWork
from escalation.main import create_app
from escalation.models import PLUMBING
from escalation.notifiers import build_notifiers
from escalation.scheduler import NotificationDispatcher

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(not have_browser(), reason="Chromium or axe-core is missing (make test installs them)")]
GORDON = demo_email("STREETS", "stat_partner")
NADIA = "nadia.santiago@city.example.gov"  # STREETS 311 staff: reads, may not act


async def sign_in(page, email: str) -> None:  # type: ignore[no-untyped-def]
    """On the provider's page, as a person does: type the email, press Authorize."""
    await page.get_by_placeholder("sub").fill(email)
    await page.get_by_role("button", name="Authorize").click()


@pytest.mark.parametrize("db_kind", ["sqlite"])  # the pages are the same on both databases: one browser run
async def test_the_owner_acts_from_the_pages(db_factory, directory, clock, tmp_path):
    from playwright.async_api import async_playwright

    smtp_port, web_port, started = free_port(), free_port(), asyncio.Event()
    mail_task = asyncio.create_task(serve(tmp_path, smtp_port=smtp_port, http_port=None, started=started))
    await asyncio.wait_for(started.wait(), 10)
    with ProviderProcess() as provider:
        base = f"http://127.0.0.1:{web_port}"
        settings = esc_settings(
            db_factory, identity_issuer=provider.issuer, identity_client_secret="pages-client-secret-0123",
            session_secret="pages-session-secret-0123456789", port=web_port, smtp_host="127.0.0.1", smtp_port=smtp_port)
        engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
        async with app_client(app) as client:
            h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
            await seed_people(h, directory)
            await h.deliver(breach(indicator="potholes", episode="p1", tag="performance", name="Pothole repair time"))
            await h.deliver(breach(indicator="leaks", episode="l1", department="WATER", name="Leak response time"))
            [ticket] = await h.tickets(indicator_id="potholes")
            sessions = session_factory(engine)
            await NotificationDispatcher(lambda: UnitOfWork(sessions, PLUMBING), build_notifiers(settings),
                                         clock=clock).run_once()
            [letter] = [m for m in (message_from_bytes(p.read_bytes(), policy=email.policy.default)
                                    for p in tmp_path.glob("*.eml")) if GORDON in m["To"]]
            link = re.search(r"Open the ticket: (\S+)", body_text(letter)).group(1)  # type: ignore[union-attr]
            assert link == f"{base}/board/tickets/{ticket['id']}"

        web = create_app(settings.model_copy(update={"directory_url": closed_port_url()}), clock=clock, check_worker=False)
        server = ThreadServer(web)
        server.port = web_port
        server.server.config.port = web_port
        with server:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    gordon = await browser.new_context()
                    page = await gordon.new_page()
                    # the mail's link, then the city's sign-in, then the ticket
                    await page.goto(link)
                    assert page.url.startswith(provider.issuer)
                    await sign_in(page, GORDON)
                    await page.wait_for_url(link)
                    assert await page.locator("h2").first.inner_text() == "Pothole repair time is red (2026-10)"

                    await page.goto(f"{base}/board")
                    assert "Signed in as Gordon Nakamura" in await page.inner_text("header")
                    await page.get_by_role("link", name="My tickets").click()
                    await page.wait_for_url(f"{base}/board?mine=true")
                    cards = page.locator("a.card")
                    assert await cards.count() == 1 and "Pothole repair time" in await cards.first.inner_text()
                    assert "Next escalation:" in await cards.first.inner_text()
                    violations = await axe_violations(page)
                    assert violations == [], describe(violations)
                    await page.goto(f"{base}/board?status=open&level=0")  # the filters are URL parameters
                    assert await page.locator("a.card").count() == 2
                    assert await page.locator("input[name=status][value=open]").is_checked()

                    await page.goto(link)
                    violations = await axe_violations(page)
                    assert violations == [], describe(violations)
                    await page.get_by_role("button", name="Acknowledge").click()
                    await page.wait_for_url(f"{link}#timeline")
                    await page.get_by_label("What will be done").fill("Second crew on the pothole backlog")
                    await page.get_by_label("Due date").first.fill("2026-11-30")
                    await page.get_by_role("button", name="Log the action").click()
                    await page.wait_for_load_state()
                    assert "Second crew on the pothole backlog — Gordon Nakamura, due 2026-11-30" in await page.inner_text("article")
                    # an error is shown on the page, in words
                    await page.get_by_label("Until (city time)").fill("2026-11-20T09:00")
                    await page.locator("#f-mute-reason").fill("waiting for the asphalt plant")
                    await page.get_by_role("button", name="Mute").click()
                    await page.wait_for_load_state()
                    alert = await page.get_by_role("alert").inner_text()
                    assert "future" in alert and "Traceback" not in alert, alert
                    await page.get_by_label("Resolution").select_option("fixed")
                    await page.get_by_role("button", name="Resolve").click()
                    await page.wait_for_load_state()
                    timeline = await page.locator("ol.timeline li").all_inner_texts()
                    for kind in ("acknowledged", "action added", "resolved"):
                        [entry] = [x for x in timeline if f"· {kind} ·" in x]
                        assert "Gordon Nakamura:" in entry, entry
                    assert "status resolved" in await page.inner_text("article")
                    # a form post without its CSRF token is refused
                    refused = await page.request.post(f"{base}/board/tickets/{ticket['id']}/note", form={"text": "x"})
                    assert refused.status == 403 and "security token" in await refused.text()

                    nadia = await browser.new_context()
                    other = await nadia.new_page()
                    await other.goto(f"{base}/board")
                    await sign_in(other, NADIA)
                    await other.wait_for_url(f"{base}/board")
                    csrf = await other.locator("header input[name=csrf]").get_attribute("value")  # her own session's
                    [water] = [c for c in await other.locator("a.card").all() if "Leak" in await c.inner_text()]
                    water_href = base + (await water.get_attribute("href") or "")
                    await other.goto(water_href)
                    assert await other.locator("form.act").count() == 0  # nothing offered that she may not use
                    assert "only the WATER senior team" in await other.inner_text("article")
                    forged = await other.request.post(water_href + "/acknowledge",
                                                      form={"csrf": csrf or ""})
                    assert forged.status == 403
                    assert "only the WATER senior team, the ticket's assignee or their chain may acknowledge" in html.unescape(await forged.text())
                finally:
                    await browser.close()
        await deps.directory.aclose()
        await engine.dispose()
    mail_task.cancel()
