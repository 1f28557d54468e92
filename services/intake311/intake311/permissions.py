"""Whose requests a caller may act on (acknowledge, start, close, reopen, transfer, note, merge).

A department's 311 staff act on their own department's requests: a person with 311:write acts on a
request whose department is one of theirs (the provider's ``citystat-dept-<CODE>`` groups). The 311
contact center (department CONTACT311) takes calls about everything, so its staff act on all, as do
administrators. A machine key is limited the same way when its entry lists departments; a key
without (the call-center software, a city integration) acts on all, as it always has. A person in no
department acts on none: being staff is not enough to close another agency's work.
"""

from __future__ import annotations

from collections.abc import Iterable

from citystat_common.auth import Principal
from citystat_common.errors import DomainError

CONTACT_CENTER = "CONTACT311"


class NotYours(DomainError):
    """403: the caller may write, but not on this department's requests."""

    status = 403
    title = "Forbidden"


def acts_on_all(who: Principal) -> bool:
    if "admin" in who.scopes or CONTACT_CENTER in who.departments:
        return True
    return not who.is_person and not who.departments


def is_theirs(who: Principal, department_code: str) -> bool:
    """Whether ``department_code`` (the city's, case kept) is one of the caller's. Sign-in groups and
    key entries carry departments upper-cased (citystat_common.auth: identity providers do not keep
    the case of group names), so the two are matched without case."""
    return department_code.casefold() in {d.casefold() for d in who.departments}


def may_act_on(who: Principal, department_code: str) -> bool:
    return acts_on_all(who) or is_theirs(who, department_code)


def refusal(who: Principal, department_code: str) -> str | None:
    """Why ``who`` may not act on a request of ``department_code``, in words; None when they may."""
    if may_act_on(who, department_code):
        return None
    code = department_code
    if not who.departments:
        return (f"this request belongs to {code}, and you are in no department: only {code}'s 311 staff "
                "or the 311 contact center may act on it")
    mine = ", ".join(sorted(who.departments))
    if who.is_person:
        whose = "your departments are" if len(who.departments) > 1 else "your department is"
    else:
        whose = f"key {who.name} is limited to"
    return f"this request belongs to {code}; {whose} {mine}: only {code}'s 311 staff or the 311 contact center may act on it"


def check(who: Principal, department_code: str, *, field: str = "department_code") -> None:
    reason = refusal(who, department_code)
    if reason is not None:
        raise NotYours(reason, field=field)


def visible_departments(who: Principal, codes: Iterable[str] | None = None) -> frozenset[str] | None:
    """The departments whose queue ``who`` works (None: every department's): theirs as their sign-in
    names them, and those of ``codes`` (the city's, as stored: "dohmh") that are theirs."""
    if acts_on_all(who):
        return None
    return who.departments | frozenset(c for c in codes or () if is_theirs(who, c))
