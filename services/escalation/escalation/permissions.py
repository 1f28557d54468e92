"""Who may act on a ticket: the Senior Team Model, for people (machine keys keep their scopes).

A person may change a ticket when they
- work in the performance office (group ``citystat-performance_office``) or hold the admin scope;
- hold a senior-team role in the ticket's department (the copy of the senior team, matched by
  email or directory person id);
- are the ticket's assignee;
- are up its chain: the department head, the cluster's deputy mayor, the managing director.
Everyone else reads. Pure functions: the caller loads the team and the ticket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PERFORMANCE_OFFICE_GROUP = "citystat-performance_office"
SENIOR_ROLES = ("department_head", "oit_partner", "hr_partner", "budget_partner", "stat_partner",
                "customer_service_officer")
Holder = Mapping[str, Any] | None


@dataclass(frozen=True)
class Asker:
    """The person asking: their email (lower case), directory person id when known, groups, admin."""

    email: str | None = None
    person_id: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


@dataclass(frozen=True)
class Team:
    """A department's senior team and chain, as escalation's copy of the directory holds it."""

    department_code: str
    roles: Mapping[str, Holder] = field(default_factory=dict)
    deputy_mayor: Holder = None
    managing_director: Holder = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    because: str  # why it is allowed ("stat_partner of STREETS", "assignee", ...) or refused

    def __bool__(self) -> bool:
        return self.allowed


def is_holder(holder: Holder, asker: Asker) -> bool:
    if not holder:
        return False
    if asker.person_id and holder.get("person_id") == asker.person_id:
        return True
    email = str(holder.get("email") or "").lower()
    return bool(asker.email and email and email == asker.email.lower())


def _office(asker: Asker) -> Decision | None:
    if asker.admin:
        return Decision(True, "admin")
    if PERFORMANCE_OFFICE_GROUP in asker.groups:
        return Decision(True, "performance office")
    return None


def _team_and_chain(asker: Asker, team: Team | None, chain: Iterable[Mapping[str, Any]]) -> Decision | None:
    if team is not None:
        for role in SENIOR_ROLES:
            if is_holder(team.roles.get(role), asker):
                return Decision(True, f"{role} of {team.department_code}")
        if is_holder(team.deputy_mayor, asker):
            return Decision(True, "deputy_mayor")
        if is_holder(team.managing_director, asker):
            return Decision(True, "managing_director")
    # the chain kept on the ticket when it opened: the copy may not hold the team (directory down)
    for link in chain:
        if link.get("role") in ("department_head", "deputy_mayor", "managing_director") and is_holder(link.get("person"), asker):
            return Decision(True, str(link["role"]))
    return None


def refusal(department_code: str, verb: str) -> str:
    return f"only the {department_code} senior team, the ticket's assignee or their chain may {verb} this ticket"


def on_ticket(asker: Asker, *, department_code: str, assignee: Holder, chain: Iterable[Mapping[str, Any]] = (),
              team: Team | None, verb: str) -> Decision:
    """May the person ``verb`` (acknowledge, resolve...) the ticket?"""
    found = _office(asker)
    if found is None and is_holder(assignee, asker):
        found = Decision(True, "assignee")
    found = found or _team_and_chain(asker, team, chain)
    return found or Decision(False, refusal(department_code, verb))


def for_department(asker: Asker, *, department_code: str, team: Team | None, verb: str) -> Decision:
    """May the person ``verb`` for the department (open a flag, mute its escalations)?"""
    found = _office(asker) or _team_and_chain(asker, team, ())
    return found or Decision(False, f"only the {department_code} senior team, their chain or the performance "
                                    f"office may {verb} for {department_code}")


def office_only(asker: Asker, *, verb: str) -> Decision:
    return _office(asker) or Decision(False, f"only the performance office may {verb}")
