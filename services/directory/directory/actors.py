"""Who changed the directory: every write records the caller's ``Actor`` (citystat_common.auth), a
person by name and email or a machine key, in the audit log and in an assignment's history.

The stored label is what a reader sees: the person's name, or "key <name>" for a key. Rows written
before people could sign in keep the key's bare name and have no kind, email or way in."""

from __future__ import annotations

from datetime import datetime

from citystat_common.auth import Actor
from citystat_common.uow import UnitOfWork
from directory import schemas
from directory.models import AuditEntry, RoleAssignment

LABEL_MAX = 320  # the columns' width; a provider may send a longer name


def label(actor: Actor) -> str:
    return actor.label[:LABEL_MAX]


def audit(uow: UnitOfWork, *, actor: Actor, action: str, entity: str, entity_id: str, **details: object) -> None:
    uow.session.add(
        AuditEntry(
            actor=label(actor), actor_kind=actor.kind, actor_email=actor.email, actor_via=actor.via,
            action=action, entity=entity, entity_id=entity_id, details=_jsonable(details),
        )
    )


def _jsonable(d: dict[str, object]) -> dict[str, object]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


def record_creator(assignment: RoleAssignment, actor: Actor) -> None:
    assignment.created_by = label(actor)
    assignment.created_by_kind = actor.kind
    assignment.created_by_email = actor.email
    assignment.created_by_via = actor.via


def _read(label_: str, kind: str | None, email: str | None, via: str | None) -> schemas.ActorRead | None:
    if kind is None:
        return None  # recorded before actors were: the label is all there is
    return schemas.ActorRead(kind=kind, name=label_ if kind == "person" else label_.removeprefix("key "),
                             email=email, via=via)


def audit_actor(entry: AuditEntry) -> schemas.ActorRead | None:
    return _read(entry.actor, entry.actor_kind, entry.actor_email, entry.actor_via)


def assignment_actor(a: RoleAssignment) -> schemas.ActorRead | None:
    return _read(a.created_by, a.created_by_kind, a.created_by_email, a.created_by_via)
