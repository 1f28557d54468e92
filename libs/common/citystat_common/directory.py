"""The directory's department records, asked on demand.

intake311 and indicators keep a local copy of the departments (fed by ``directory.changes``).
When a write names a department the copy does not hold yet (the directory's event has not
arrived), they ask the directory over HTTP with a short timeout. One client per process,
built in the app's lifespan: connections are reused, the correlation id goes along, and the
domain code gets this object (or a fake in tests) instead of doing HTTP itself.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import httpx

from citystat_common.http import correlated_client
from citystat_common.logging import get_logger

log = get_logger(__name__)


class DirectoryUnreachable(Exception):
    """The directory could not answer (down, timed out, or answered with an error)."""


class Departments(Protocol):
    async def get(self, code: str) -> dict[str, Any] | None:
        """The department's record, None if the directory has no such department; raises
        ``DirectoryUnreachable`` when it cannot tell."""
        ...


class DirectoryDepartments:
    def __init__(self, client: httpx.AsyncClient, *, owned: bool = True):
        self._client = client
        self._owned = owned

    @classmethod
    def connect(cls, base_url: str, timeout: float) -> DirectoryDepartments:
        return cls(correlated_client(base_url=base_url, timeout=timeout))

    async def get(self, code: str) -> dict[str, Any] | None:
        try:
            # quoted: a code is one path segment, whatever it contains
            r = await self._client.get(f"/departments/{quote(code, safe='')}")
        except httpx.HTTPError as exc:
            log.warning("directory_unreachable", error=repr(exc))
            raise DirectoryUnreachable(repr(exc)) from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            log.warning("directory_unreachable", status=r.status_code)
            raise DirectoryUnreachable(f"the directory answered {r.status_code}")
        try:
            doc = r.json()
        except ValueError as exc:
            raise DirectoryUnreachable("the directory's answer is not JSON") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
            raise DirectoryUnreachable("the directory's answer is not a department")
        return doc

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
