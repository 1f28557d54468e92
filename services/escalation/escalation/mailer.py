"""The email notifier: one message per notification (to the recipient, the people copied in Cc),
or one digest per person of everything that waited for the calendar's opening. The Message-ID
comes from the notification's key (or the digest's), so a resend after a crash carries the same
id and a relay or mailbox that deduplicates drops it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from citystat_common.mail import Recipient, SmtpConfig, compose, send


class EmailNotifier:
    name = "email"

    def __init__(self, config: SmtpConfig):
        self.config = config

    async def send(self, message: dict[str, Any]) -> None:
        to = message.get("recipient_email")
        if not to:
            raise RuntimeError("no email address for the recipient")
        person = message.get("recipient") or {}
        cc = [Recipient(c["email"], c.get("name")) for c in message.get("cc") or [] if c.get("email")]
        msg = compose(self.config, to=Recipient(to, person.get("name")), subject=message["subject"],
                      text=message["mail_text"], key=message["key"], cc=cc or None)
        await send(self.config, msg)

    async def send_digest(self, email: str, name: str | None, messages: Sequence[dict[str, Any]], *, key: str) -> None:
        parts = [f"Dear {name}," if name else "Hello,", "",
                 f"CityStat's daily digest: {len(messages)} message{'s' if len(messages) != 1 else ''} since the last one.", ""]
        for i, m in enumerate(messages, 1):
            parts += [f"{i}. {m.get('subject', '').removeprefix('[CityStat] ')}", f"   {m.get('text', '')}",
                      f"   Indicator: {m.get('indicator') or 'none'}; miss: {m.get('miss', '')}",
                      f"   Next escalation: {m.get('next_escalation', '')}", f"   Open the ticket: {m.get('url', '')}", ""]
        parts.append("You receive one digest a working day: your notification preference in the directory.")
        msg = compose(self.config, to=Recipient(email, name),
                      subject=f"[CityStat] Your daily digest: {len(messages)} ticket update{'s' if len(messages) != 1 else ''}",
                      text="\n".join(parts), key=key)
        await send(self.config, msg)
