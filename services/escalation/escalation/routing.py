"""Who answers for a flag: the local copy of the department's senior team (the directory's own
events), the directory's /routing API for a department the copy lacks (timeout, retries,
circuit breaker), and the managing director's queue when nobody knows the department. A ticket
is never dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from citystat_common.events import FUNCTION_ROLE
from citystat_common.http import correlated_client
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation.models import SeniorTeamCopy

log = get_logger(__name__)

CHAIN_ROLES = ("department_head", "deputy_mayor", "managing_director")


def function_of(tag: str | None) -> str:
    """Any tag the directory does not know routes to the performance-office (Stat) partner."""
    return tag if tag is not None and tag in FUNCTION_ROLE else "performance"


# --- circuit breaker -----------------------------------------------------------------------


class CircuitOpen(Exception):
    """The breaker is open: the call was not attempted."""


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (reset time) -> half_open -> one trial call:
    success closes it, failure opens it again. ``clock`` is injectable (monotonic seconds)."""

    def __init__(self, failures: int = 3, reset_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_seconds else "open"

    def before_call(self) -> None:
        if self.state == "open":
            raise CircuitOpen("the directory circuit breaker is open")

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        if self.state == "half_open":
            self.opened_at = self.clock()  # the trial call failed: open again for a full period
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


# --- directory client ----------------------------------------------------------------------


class DirectoryUnavailable(Exception):
    pass


class DepartmentUnknown(Exception):
    pass


class DirectoryClient:
    """GET /routing with a per-attempt timeout, bounded retries and a circuit breaker.
    ``transport`` is injectable (tests hand in the real directory app's ASGI transport)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 1.0,
        retries: int = 2,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.breaker = breaker or CircuitBreaker()
        # carries the correlation id of the event or request being handled into the directory's logs
        self._client = correlated_client(base_url=self.base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def record(self, kind: str, key: str) -> dict[str, Any] | None:
        """``GET /departments/{code}`` or ``/people/{id}``: the record, None when the directory does
        not know it; DirectoryUnavailable when it cannot tell. One attempt: a caller is waiting."""
        self.breaker.before_call()
        try:
            # quoted: a key is one path segment, whatever it contains
            r = await self._client.get(f"/{kind}/{quote(key, safe='')}")
        except (httpx.TransportError, OSError) as exc:
            self.breaker.failure()
            raise DirectoryUnavailable(repr(exc)) from exc
        if r.status_code == 404:
            self.breaker.success()
            return None
        if r.status_code != 200:
            self.breaker.failure()
            raise DirectoryUnavailable(f"directory answered {r.status_code}")
        try:
            doc = r.json()
        except ValueError as exc:
            raise DirectoryUnavailable("unreadable directory answer") from exc
        if not isinstance(doc, dict):
            raise DirectoryUnavailable("unreadable directory answer")
        self.breaker.success()
        return doc

    async def routing(self, department: str, function: str) -> dict[str, Any]:
        self.breaker.before_call()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                r = await self._client.get("/routing", params={"department": department, "function": function})
            except (httpx.TransportError, OSError) as exc:
                last = exc
            else:
                if r.status_code == 404:
                    self.breaker.success()  # the directory answered: it does not know the department
                    raise DepartmentUnknown(department)
                if r.status_code == 200:
                    try:
                        doc = r.json()
                        if not isinstance(doc, dict) or "chain" not in doc or "department" not in doc:
                            raise ValueError("missing chain or department")
                    except ValueError as exc:
                        last = DirectoryUnavailable(f"unreadable routing document: {exc}")
                    else:
                        self.breaker.success()
                        return doc
                elif 400 <= r.status_code < 500:
                    self.breaker.success()  # our request is wrong (e.g. an unknown function): no retry helps
                    raise DirectoryUnavailable(f"directory answered {r.status_code}")
                else:
                    last = DirectoryUnavailable(f"directory answered {r.status_code}")
            if attempt < self.retries:
                await asyncio.sleep(0.05 * (2**attempt))
        self.breaker.failure()
        log.warning("directory_unavailable", error=repr(last), breaker=self.breaker.state)
        raise DirectoryUnavailable(repr(last))


# --- decisions -----------------------------------------------------------------------------


@dataclass
class Routing:
    department_code: str
    department_name: str | None
    cluster_code: str | None
    assignee: dict[str, Any] | None  # {person_id, name, title}
    assignee_role: str | None
    level: int
    source: str  # local_copy (the usual path) | directory | fallback
    note: str | None
    chain: list[dict[str, Any]] = field(default_factory=list)  # [{level, role, person|None}]


def _person_from_api(p: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"person_id": p["id"], "name": p["name"], "title": p.get("title")} if p else None


def from_directory(doc: dict[str, Any]) -> Routing:
    chain = [{"level": c["level"], "role": c["role"], "person": _person_from_api(c.get("person"))} for c in doc["chain"]]
    note = None
    if doc.get("fallback"):
        who = doc.get("responsible_role") or "nobody"
        note = f"{doc.get('fallback_reason') or 'the role is vacant'}: routed to the {who.replace('_', ' ')}"
    return Routing(
        department_code=doc["department"], department_name=doc.get("department_name"), cluster_code=doc.get("cluster"),
        assignee=_person_from_api(doc.get("responsible")), assignee_role=doc.get("responsible_role"), level=0,
        source="directory", note=note, chain=chain,
    )


def from_local_copy(team: SeniorTeamCopy, function: str, *, degraded: str | None = None) -> Routing:
    """The directory's routing rule applied to the local copy (same fallbacks, same chain).
    ``degraded``: why the copy is used for a department it only partly knows."""
    role = FUNCTION_ROLE[function]
    roles = team.roles or {}
    partner, head = roles.get(role), roles.get("department_head")
    chain = [
        {"level": 0, "role": role, "person": partner},
        {"level": 1, "role": "department_head", "person": head},
        {"level": 2, "role": "deputy_mayor", "person": team.deputy_mayor},
        {"level": 3, "role": "managing_director", "person": team.managing_director},
    ]
    responsible, responsible_role, note = partner, role, None
    if partner is None:
        note = f"the {role} role is vacant"
        responsible, responsible_role = head, "department_head"
        if head is None:
            note += "; the department_head role is vacant too"
            if team.deputy_mayor:
                responsible, responsible_role = team.deputy_mayor, "deputy_mayor"
            else:
                responsible, responsible_role = team.managing_director, "managing_director"
        note += f": routed to the {responsible_role.replace('_', ' ') if responsible else 'nobody'}"
    if degraded:
        prefix = f"{degraded}; routed from the local copy of the senior team"
        note = f"{prefix}; {note}" if note else prefix
    return Routing(
        department_code=team.department_code, department_name=team.department_name, cluster_code=team.cluster_code,
        assignee=responsible, assignee_role=responsible_role if responsible else None, level=0, source="local_copy",
        note=note, chain=chain,
    )


async def known_managing_director(uow: UnitOfWork) -> dict[str, Any] | None:
    stmt = (
        sa.select(SeniorTeamCopy.managing_director)
        .where(SeniorTeamCopy.managing_director.is_not(None))
        .order_by(SeniorTeamCopy.updated_at.desc())
        .limit(1)
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def route(
    uow: UnitOfWork, directory: DirectoryClient | None, *, department_code: str, function_tag: str | None
) -> Routing:
    """Who answers for a breach. The local copy of the department's senior team is the directory's
    own state as its events carried it (``directory.senior_team.changed``, published on every
    change and when a future assignment starts), so a department the copy knows is routed from it:
    asking the directory's ``/routing`` again was a synchronous round trip per ticket (about a
    third of the consumer's time per breach) and made ticket opening depend on the directory being
    up. The directory is asked only for a department the copy lacks (not yet seen, or known
    without its roles), then the managing director's queue with the reason."""
    function = function_of(function_tag)
    team = await uow.session.get(SeniorTeamCopy, department_code)
    if team is not None and team.active and team.roles is not None:
        return from_local_copy(team, function)
    why = "the directory is not configured"
    if directory is not None:
        try:
            return from_directory(await directory.routing(department_code, function))
        except DepartmentUnknown:
            why = f"the directory does not know department {department_code}"
        except CircuitOpen:
            why = "the directory circuit breaker is open"
        except DirectoryUnavailable as exc:
            why = f"the directory is unreachable ({exc})"
    if team is not None and team.roles is not None:  # an inactive department the directory could not route
        return from_local_copy(team, function, degraded=why)
    md = await known_managing_director(uow)
    note = f"{why}, and the local copy has no senior team for {department_code}: sent to the managing director's queue"
    if md is None:
        note += " (no managing director known either: unassigned)"
    chain = [{"level": 3, "role": "managing_director", "person": md}]
    return Routing(
        department_code=department_code, department_name=team.department_name if team else None,
        cluster_code=team.cluster_code if team else None, assignee=md, assignee_role="managing_director" if md else None,
        level=3, source="fallback", note=note, chain=chain,
    )


async def current_chain(uow: UnitOfWork, department_code: str, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chain for escalation: the local copy's current holders, or the one stored on the ticket."""
    team = await uow.session.get(SeniorTeamCopy, department_code)
    if team is None or team.roles is None:
        md = await known_managing_director(uow)
        chain = [dict(c) for c in stored]
        if md and not any(c["level"] == 3 and c.get("person") for c in chain):
            chain = [c for c in chain if c["level"] != 3] + [{"level": 3, "role": "managing_director", "person": md}]
        return chain
    partner = next((c for c in stored if c["level"] == 0), None)
    return [
        *([partner] if partner else []),
        {"level": 1, "role": "department_head", "person": (team.roles or {}).get("department_head")},
        {"level": 2, "role": "deputy_mayor", "person": team.deputy_mayor},
        {"level": 3, "role": "managing_director", "person": team.managing_director},
    ]
