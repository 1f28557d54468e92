"""A loopback server that speaks just enough of the PostgreSQL wire protocol to refuse every
connection with a given error, as a real server does while it starts up, recovers from a crash or
shuts down. For outage tests: the driver (asyncpg) and SQLAlchemy raise exactly what they raise
against a real server in that state, which a plain closed port cannot reproduce."""

from __future__ import annotations

import asyncio
import struct

from citystat_common.localbroker import free_port
from citystat_common.testing import TcpProxy

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104

STARTING_UP = ("57P03", "the database system is starting up")
SHUTTING_DOWN = ("57P03", "the database system is shutting down")
IN_RECOVERY = ("57P03", "the database system is in recovery mode")
TOO_MANY_CLIENTS = ("53300", "sorry, too many clients already")


async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sqlstate: str, message: str) -> None:
    """Answer a client's startup with a FATAL ErrorResponse, as the postmaster does, and hang up."""
    try:
        while True:
            length, code = struct.unpack("!ii", await reader.readexactly(8))
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")  # no encryption: the client then sends its startup message
                await writer.drain()
                continue
            await reader.readexactly(length - 8)  # the startup message's parameters
            break
        fields = b"".join(
            tag + value.encode() + b"\0"
            for tag, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
        ) + b"\0"
        writer.write(b"E" + struct.pack("!i", len(fields) + 4) + fields)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class RefusingPostgres:
    """``async with RefusingPostgres(STARTING_UP) as pg: url = pg.url("mydb")``."""

    def __init__(self, error: tuple[str, str] = STARTING_UP, port: int | None = None):
        self.sqlstate, self.message = error
        self.port = port or free_port()
        self._server: asyncio.AbstractServer | None = None
        self.refused = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await refuse(reader, writer, self.sqlstate, self.message)
        self.refused += 1

    async def __aenter__(self) -> RefusingPostgres:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class RecoveringPostgres(TcpProxy):
    """A proxy to a real PostgreSQL that can crash: ``await crash()`` resets every open connection
    (as the postmaster does when a backend dies) and answers new ones with "the database system is
    starting up" (crash recovery) until ``recover()``."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None):
        super().__init__(target_host, target_port, port)
        self.refusal: tuple[str, str] | None = None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refusal is not None:
            await refuse(client_r, client_w, *self.refusal)
            return
        await super()._handle(client_r, client_w)

    async def crash(self, refusal: tuple[str, str] = STARTING_UP) -> None:
        self.refusal = refusal
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    def recover(self) -> None:
        self.refusal = None
