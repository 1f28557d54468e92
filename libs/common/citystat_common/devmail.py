"""The embedded default's mail server: a real SMTP server (aiosmtpd) that keeps each message it
accepts as one RFC 5322 file under a folder (``var/mail/`` under ``make run``), and a page that
lists them, so a newcomer reads what the system sent without a mail account.

    python -m citystat_common.devmail --folder var/mail --smtp-port 8025 --http-port 8026

Files are written to a temporary name and renamed, so a reader never sees half a message; their
names sort by arrival. Nothing here is used in production, where SMTP_* settings name the city's
relay.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import html
import os
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

_NAME = re.compile(r"^[0-9TZ.-]+-[0-9a-f]{12}\.eml$")
_URL = re.compile(r"https?://[^\s<>\"']+")


class MailFolder:
    """Where accepted messages live: one ``.eml`` file per message, named by arrival time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def store(self, content: bytes, *, mail_from: str, rcpt_tos: list[str]) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        tmp = path.with_suffix(".tmp")
        # The envelope recipients are kept as a trace header: a Bcc'd recipient is in no header.
        trace = f"X-Envelope-From: {mail_from}\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n".encode()
        tmp.write_bytes(trace + content)
        os.replace(tmp, path)
        return path

    def names(self) -> list[str]:
        return sorted((p.name for p in self.folder.glob("*.eml")), reverse=True)

    def read(self, name: str) -> EmailMessage | None:
        if not _NAME.match(name) or not (self.folder / name).is_file():
            return None
        raw = (self.folder / name).read_bytes()
        return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


class FolderHandler:
    """aiosmtpd handler: accept every message and store it."""

    def __init__(self, mail: MailFolder):
        self.mail = mail

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        await asyncio.to_thread(
            self.mail.store, content, mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos)
        )
        return "250 Message accepted for delivery"


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""


def _page(title: str, body: str) -> HTMLResponse:
    doc = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font:15px system-ui,sans-serif;margin:2rem;"
        "max-width:60rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;"
        "border-bottom:1px solid #ccc}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}</style>"
        f"</head><body><main>{body}</main></body></html>"
    )
    return HTMLResponse(doc)


def build_page_app(mail: MailFolder) -> Starlette:
    async def index(_: Request) -> Response:
        rows = []
        for name in mail.names():
            msg = mail.read(name)
            if msg is None:
                continue
            rows.append(
                f"<tr><td>{html.escape(str(msg.get('Date', '')))}</td><td>{html.escape(str(msg.get('To', '')))}</td>"
                f"<td><a href='/{name}'>{html.escape(str(msg.get('Subject', '(no subject)')))}</a></td></tr>"
            )
        table = (
            "<table><thead><tr><th scope='col'>Sent</th><th scope='col'>To</th><th scope='col'>Subject</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows
            else "<p>No mail yet.</p>"
        )
        return _page("CityStat mail", f"<h1>Mail sent by CityStat</h1><p>{len(rows)} messages, newest first, "
                     f"kept in <code>{html.escape(str(mail.folder))}</code>.</p>{table}")

    async def message(request: Request) -> Response:
        name = request.path_params["name"]
        msg = mail.read(name)
        if msg is None:
            return PlainTextResponse("no such message", status_code=404)
        if request.query_params.get("raw"):
            return PlainTextResponse((mail.folder / name).read_text(errors="replace"))
        heads = "".join(
            f"<tr><th scope='row'>{h}</th><td>{html.escape(str(msg.get(h, '')))}</td></tr>"
            for h in ("From", "To", "Cc", "Date", "Subject")
            if msg.get(h)
        )
        text = _URL.sub(lambda m: f"<a href='{m.group(0)}'>{m.group(0)}</a>", html.escape(body_text(msg), quote=False))
        return _page(str(msg.get("Subject", "message")),
                     f"<p><a href='/'>All mail</a> · <a href='/{name}?raw=1'>raw</a></p>"
                     f"<h1>{html.escape(str(msg.get('Subject', '')))}</h1><table>{heads}</table><pre>{text}</pre>")

    return Starlette(routes=[Route("/", index), Route("/{name}", message)])


async def serve(folder: Path, *, host: str = "127.0.0.1", smtp_port: int = 8025, http_port: int | None = 8026,
                started: asyncio.Event | None = None) -> None:
    """SMTP (and the page, unless http_port is None) on one event loop until cancelled."""
    import uvicorn

    mail = MailFolder(folder)
    handler = FolderHandler(mail)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(handler, hostname="citystat-devmail"), host, smtp_port)
    tasks: list[asyncio.Task[Any]] = []
    if http_port is not None:
        config = uvicorn.Config(build_page_app(mail), host=host, port=http_port, log_level="warning")
        tasks.append(asyncio.create_task(uvicorn.Server(config).serve()))
    if started is not None:
        started.set()
    try:
        await asyncio.gather(smtp.serve_forever(), *tasks)
    finally:
        smtp.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="CityStat's local mail server: SMTP into files, and a page")
    ap.add_argument("--folder", default="var/mail")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--smtp-port", type=int, default=8025)
    ap.add_argument("--http-port", type=int, default=8026)
    args = ap.parse_args(argv)
    print(f"mail: SMTP on {args.host}:{args.smtp_port}, files in {args.folder}/, "
          f"page at http://{args.host}:{args.http_port}/", flush=True)
    asyncio.run(serve(Path(args.folder), host=args.host, smtp_port=args.smtp_port, http_port=args.http_port))


if __name__ == "__main__":
    main()
