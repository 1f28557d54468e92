"""Mail reaches a person: a real SMTP conversation (aiosmtplib -> aiosmtpd) into one RFC 5322 file
per message under the mail folder, and the page that lists them."""

import asyncio
import email
import email.policy

import httpx
import pytest

from citystat_common.devmail import MailFolder, serve
from citystat_common.localbroker import free_port
from citystat_common.mail import Recipient, SmtpConfig, compose, message_id, send

pytestmark = pytest.mark.integration


async def test_a_message_over_smtp_becomes_one_file_and_is_listed(tmp_path):
    smtp_port, http_port = free_port(), free_port()
    started = asyncio.Event()
    server = asyncio.create_task(serve(tmp_path, smtp_port=smtp_port, http_port=http_port, started=started))
    try:
        await asyncio.wait_for(started.wait(), 10)
        config = SmtpConfig(port=smtp_port)
        msg = compose(
            config, to=Recipient("ann.lee@streets.city.gov", "Ann Lee"), subject="Ticket opened: potholes",
            text="Open the ticket: http://127.0.0.1:8003/tickets/abc", key="event-1/opened",
            cc=[Recipient("head@streets.city.gov")],
        )
        await send(config, msg)
        files = sorted(tmp_path.glob("*.eml"))
        assert len(files) == 1
        stored = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert stored["Subject"] == "Ticket opened: potholes"
        assert stored["To"] == "Ann Lee <ann.lee@streets.city.gov>"
        assert stored["Message-ID"] == message_id("event-1/opened", "ann.lee@streets.city.gov")
        assert "ann.lee@streets.city.gov" in stored["X-Envelope-To"] and "head@streets.city.gov" in stored["X-Envelope-To"]
        assert "http://127.0.0.1:8003/tickets/abc" in stored.get_body().get_content()

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as web:
            for _ in range(50):  # uvicorn starts beside the SMTP server
                try:
                    index = await web.get("/")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert "Ticket opened: potholes" in index.text
            page = await web.get(f"/{files[0].name}")
            assert page.status_code == 200 and "<a href='http://127.0.0.1:8003/tickets/abc'>" in page.text
            assert (await web.get("/../../etc/passwd")).status_code == 404
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server


def test_message_ids_are_stable_per_subject_and_recipient():
    assert message_id("e1", "A@x.gov") == message_id("e1", "a@x.gov")
    assert message_id("e1", "a@x.gov") != message_id("e2", "a@x.gov")
    assert message_id("e1", "a@x.gov") != message_id("e1", "b@x.gov")


def test_folder_ignores_names_it_did_not_write(tmp_path):
    folder = MailFolder(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    assert folder.names() == [] and folder.read("notes.txt") is None
