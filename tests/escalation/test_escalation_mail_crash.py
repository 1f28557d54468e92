"""A worker killed with kill -9 while it sends a batch of mail: restarted, it sends what it had
not recorded, and every message arrives once (files in the mail folder counted by Message-ID)."""

from __future__ import annotations

import asyncio
import email.policy
import os
import signal
import subprocess
import sys
from collections import Counter
from email import message_from_bytes

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP
from esc_helpers import breach, closed_port_url, esc_settings, make_harness, seed_people

from citystat_common.devmail import FolderHandler, MailFolder
from citystat_common.localbroker import free_port
from citystat_common.mail import message_id
from citystat_common.testing import eventually
from escalation.models import Notification

pytestmark = pytest.mark.integration
TICKETS = 6


class KillOnThird(FolderHandler):
    """Stores what it accepts; during the third message's DATA it kills the sending worker first, so
    that message never completes its conversation (the worker dies mid-send)."""

    def __init__(self, mail: MailFolder):
        super().__init__(mail)
        self.seen = 0
        self.victim: subprocess.Popen[bytes] | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.seen += 1
        if self.seen == 3 and self.victim is not None:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.victim.wait()
            return "451 the sender went away"
        return await super().handle_DATA(server, session, envelope)


def _worker(settings, smtp_port: int, broker) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "ESCALATION_DATABASE_URL": settings.database_url, "KAFKA_BOOTSTRAP": broker.bootstrap,
           "ESCALATION_CONSUMER_GROUP": settings.consumer_group, "ESCALATION_DIRECTORY_URL": closed_port_url(),
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "ESCALATION_NOTIFY_INTERVAL": "0.2",
           "ESCALATION_NOTIFY_LEASE_SECONDS": "1", "ESCALATION_SCHEDULER_INTERVAL": "3600"}
    return subprocess.Popen([sys.executable, "-m", "escalation.worker", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_a_worker_killed_mid_send_sends_each_message_once(db_factory, directory, clock, broker, tmp_path):
    smtp_port = free_port()
    settings = esc_settings(db_factory, smtp_host="127.0.0.1", smtp_port=smtp_port, kafka_bootstrap=broker.bootstrap)
    engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
    from esc_helpers import Harness

    from citystat_common.testing import app_client

    handler = KillOnThird(MailFolder(tmp_path))
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler, hostname="test"), "127.0.0.1",
                                                            smtp_port)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with app_client(app) as client:
            h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
            await seed_people(h, directory)
            for i in range(TICKETS):
                await h.deliver(breach(indicator=f"ind-{i}", episode=f"e-{i}", tag="performance"))
            rows = await h.rows(sa.select(Notification.channels, Notification.key, Notification.recipient_email))
            assert len(rows) == TICKETS and all("email" in c for c, _, _ in rows)
            expected = {message_id(key, to) for _, key, to in rows}

            handler.victim = _worker(settings, smtp_port, broker)
            workers.append(handler.victim)
            await eventually(lambda: handler.victim.poll() is not None, timeout=60)  # killed mid-batch
            assert len(list(tmp_path.glob("*.eml"))) == 2
            workers.append(_worker(settings, smtp_port, broker))

            async def all_sent() -> bool:
                mine = sa.select(Notification.status).where(Notification.key.in_([k for _, k, _ in rows]))
                return {s for (s,) in await h.rows(mine)} == {"sent"}

            await eventually(all_sent, timeout=60)
        ids = Counter(message_from_bytes(p.read_bytes(), policy=email.policy.default)["Message-ID"]
                      for p in tmp_path.glob("*.eml"))
        # (the shared broker may hold other tests' breaches, which the worker's consumer also reads)
        assert expected <= set(ids) and set(ids.values()) == {1}, ids
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                try:
                    w.wait(10)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait(10)
        server.close()
        await deps.directory.aclose()
        await engine.dispose()
