"""What the browser tests of the indicators pages share: the app served by uvicorn on a real port,
and the settings and steps of signing in through the city's identity provider."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from citystat_common.localbroker import free_port


@asynccontextmanager
async def served(app, port: int | None = None) -> AsyncIterator[str]:
    """The app served on 127.0.0.1 (a free port unless given) until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serve = asyncio.create_task(server.serve())
    try:
        for _ in range(400):  # uvicorn offers no event to await for start-up
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serve


def sign_in_settings(indicators_settings, issuer: str):
    """The test settings with pages that sign people in through ``issuer``, on a free port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return indicators_settings.model_copy(update={
        "port": port, "public_url": base, "identity_issuer": issuer, "identity_client_secret": "s",
        "session_secret": "test-session-secret-for-indicators", "dashboard_refresh_seconds": 0})


async def sign_in(page, base, email, path="/dashboard"):
    await page.goto(base + path)
    assert not page.url.startswith(base), "a page was shown before signing in"
    await page.get_by_placeholder("sub").fill(email)
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(base + path)
