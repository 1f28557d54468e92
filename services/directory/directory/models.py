"""Directory tables: clusters, departments, people, role assignments with effective dates, audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from citystat_common.db import TYPE_ANNOTATION_MAP, plumbing_tables, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP

PLUMBING = plumbing_tables(Base.metadata)


def new_id() -> str:
    return str(uuid.uuid4())


class Cluster(Base):
    """A deputy mayor's portfolio of departments."""

    __tablename__ = "clusters"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    cluster_id: Mapped[str | None] = mapped_column(sa.ForeignKey("clusters.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    cluster: Mapped[Cluster | None] = relationship(lazy="joined")


class Person(Base):
    __tablename__ = "people"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    title: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    active: Mapped[bool] = mapped_column(default=True)
    # The department they work in when it is not a senior-team role (311 staff, a department's
    # queue); the identity provider gives them its citystat-dept-<CODE> group.
    department_id: Mapped[str | None] = mapped_column(sa.ForeignKey("departments.id"), index=True)
    # How escalation reaches them: a mail per ticket ("immediate") or one daily digest.
    notify: Mapped[str] = mapped_column(sa.String(10), default="immediate", server_default="immediate")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    department: Mapped[Department | None] = relationship(lazy="joined")


class RoleAssignment(Base):
    """Who held a role, from when until when. Scope: a department (the six senior-team roles),
    a cluster (deputy_mayor) or the city (managing_director). ``ends_at`` NULL = current."""

    __tablename__ = "role_assignments"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(sa.String(40))
    department_id: Mapped[str | None] = mapped_column(sa.ForeignKey("departments.id"))
    cluster_id: Mapped[str | None] = mapped_column(sa.ForeignKey("clusters.id"))
    person_id: Mapped[str] = mapped_column(sa.ForeignKey("people.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    # Who recorded it (directory.actors): the label a reader sees ("Ann Lee", "key ops"), and the
    # person's email and how they called; rows from before people signed in have only the label.
    created_by: Mapped[str] = mapped_column(sa.String(320))
    created_by_kind: Mapped[str | None] = mapped_column(sa.String(10))
    created_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    created_by_via: Mapped[str | None] = mapped_column(sa.String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Recorded before it starts: the team event goes out when it does (directory.schedule).
    pending_effect: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    person: Mapped[Person] = relationship(lazy="joined")

    __table_args__ = (
        sa.Index("ix_role_assignments_scope", "department_id", "cluster_id", "role", "starts_at"),
        sa.Index("ix_role_assignments_pending", "pending_effect", "starts_at"),
    )


class AuditEntry(Base):
    """Who changed what in the directory, and when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(320))  # label, as RoleAssignment.created_by
    actor_kind: Mapped[str | None] = mapped_column(sa.String(10))
    actor_email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    actor_via: Mapped[str | None] = mapped_column(sa.String(10))
    action: Mapped[str] = mapped_column(sa.String(60))
    entity: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[str] = mapped_column(sa.String(100))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
