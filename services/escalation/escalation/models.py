"""Escalation tables: policies, tickets with their timeline, escalations, notifications,
actions, projects and milestones, mutes, and the local copy of the directory's senior teams."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from citystat_common.db import TYPE_ANNOTATION_MAP, plumbing_tables, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP

PLUMBING = plumbing_tables(Base.metadata)

OPEN_STATUSES = ("open", "acknowledged", "in_progress")
STATUSES = ("open", "acknowledged", "in_progress", "resolved", "closed")
RESOLUTIONS = ("fixed", "recovered", "false_positive", "accepted_risk", "duplicate")
LEVEL_ROLES = {1: "department_head", 2: "deputy_mayor", 3: "managing_director"}


def new_id() -> str:
    return str(uuid.uuid4())


class Policy(Base):
    """Escalation levels with conditions and delays per severity (``levels`` JSON, see schemas.PolicyLevel)."""

    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    is_default: Mapped[bool] = mapped_column(default=False)
    departments: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    ack_timeout: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # {"amount": 2, "unit": "business_days"}
    resolve_on_recovery: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    department_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    department_name: Mapped[str | None] = mapped_column(sa.String(200))
    cluster_code: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    indicator_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    indicator_code: Mapped[str | None] = mapped_column(sa.String(100))
    episode_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    # The dedup key: the episode id while the ticket is open, NULL once resolved or closed,
    # so "one open ticket per breach episode" is a unique constraint on both databases.
    open_episode: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    severity: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20), index=True, default="open")
    source: Mapped[str] = mapped_column(sa.String(20))  # threshold | manual
    function_tag: Mapped[str] = mapped_column(sa.String(40), default="performance")
    critical: Mapped[bool] = mapped_column(default=False)
    magnitude: Mapped[float | None]
    basis: Mapped[str | None] = mapped_column(sa.String(60))
    value: Mapped[float | None]
    target: Mapped[float | None]
    period: Mapped[str | None] = mapped_column(sa.String(40))
    breach_count: Mapped[int] = mapped_column(default=1)
    # Routing at the time of opening: who was responsible and why.
    assignee_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    assignee_name: Mapped[str | None] = mapped_column(sa.String(200))
    assignee_title: Mapped[str | None] = mapped_column(sa.String(200))
    assignee_role: Mapped[str | None] = mapped_column(sa.String(40))
    routing_source: Mapped[str | None] = mapped_column(sa.String(20))  # directory | local_copy | fallback
    routing_note: Mapped[str | None] = mapped_column(sa.String(500))
    chain: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    # Escalation state: due times live here, never only in memory.
    policy_id: Mapped[str | None] = mapped_column(sa.ForeignKey("policies.id"))
    level: Mapped[int] = mapped_column(default=0, index=True)
    level_entered_at: Mapped[datetime]
    level_repeats: Mapped[int] = mapped_column(default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    ack_due_at: Mapped[datetime | None]  # when the first acknowledgement was due (overdue gauge, board)
    ack_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    ack_warned_for: Mapped[datetime | None]  # the ack_expires_at already warned about (one mail per acknowledgement)
    muted_until: Mapped[datetime | None]
    mute_reason: Mapped[str | None] = mapped_column(sa.String(500))
    review_pending: Mapped[bool] = mapped_column(default=False)  # indicator recovered, awaiting review
    recovered_at: Mapped[datetime | None]
    resolution_reason: Mapped[str | None] = mapped_column(sa.String(20))
    project_id: Mapped[str | None] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    opened_by: Mapped[str] = mapped_column(sa.String(100))
    opened_at: Mapped[datetime] = mapped_column(index=True)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(100))
    in_progress_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(sa.String(100))
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.CheckConstraint("severity BETWEEN 1 AND 4", name="severity_range"),
        sa.Index("ix_tickets_due", "status", "next_escalation_at"),
    )


class TimelineEntry(Base):
    """Every event of a ticket: opened, breach repeated, status and severity changes,
    escalations, notes, actions, mutes; with author and time."""

    __tablename__ = "timeline"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(40))
    text: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # who, in full (escalation.authors.Author.as_dict); NULL on rows written before people signed in
    author: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class Escalation(Base):
    """One row per level a ticket reached: the unique (ticket_id, to_level) is what makes
    'never escalate the same ticket twice for the same level' hold across replicas."""

    __tablename__ = "escalations"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"))
    department_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    from_level: Mapped[int]
    to_level: Mapped[int]
    level_role: Mapped[str] = mapped_column(sa.String(40))
    reason: Mapped[str] = mapped_column(sa.String(500))
    notified: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (sa.UniqueConstraint("ticket_id", "to_level", name="uq_escalations_ticket_level"),)


class Notification(Base):
    """A message to a person, written with the change that caused it and sent after the commit
    by the notifier dispatcher (log, webhook), with retries."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(40))  # opened, escalated, reminder
    level: Mapped[int]
    recipient_id: Mapped[str | None] = mapped_column(sa.String(36))
    recipient_name: Mapped[str | None] = mapped_column(sa.String(200))
    recipient_role: Mapped[str | None] = mapped_column(sa.String(40))
    recipient_email: Mapped[str | None] = mapped_column(sa.String(320))
    cc: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON, default=list)  # [{name, email}]
    # One message per event per recipient: a replay or a second scheduler writes the same key.
    key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    digest_at: Mapped[datetime | None]  # a digest person's mail waits for the calendar's next opening
    body: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending", index=True)  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Action(Base):
    """The action log: what was done or will be done, by whom, by when."""

    __tablename__ = "actions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    description: Mapped[str] = mapped_column(sa.Text)
    owner: Mapped[str] = mapped_column(sa.String(200))
    owner_person_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    due_date: Mapped[date | None]
    due_notified_for: Mapped[date | None]  # the due date its owner was mailed about
    status: Mapped[str] = mapped_column(sa.String(20), default="planned")  # planned, in_progress, done, cancelled
    created_by: Mapped[str] = mapped_column(sa.String(100))
    author: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketLink(Base):
    __tablename__ = "ticket_links"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    other_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(sa.String(20))  # duplicates, related
    created_by: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime]

    __table_args__ = (sa.UniqueConstraint("ticket_id", "other_id", "kind", name="uq_ticket_links_pair"),)


class Project(Base):
    """A flag promoted to a project: owner, goal, due date, milestones, linked tickets."""

    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(sa.String(300))
    department_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    owner: Mapped[str] = mapped_column(sa.String(200))
    goal: Mapped[str] = mapped_column(sa.Text)
    due_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(sa.String(20), default="active")  # active, on_hold, done, cancelled
    created_by: Mapped[str] = mapped_column(sa.String(100))
    author: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Milestone(Base):
    __tablename__ = "milestones"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    due_date: Mapped[date | None]
    done: Mapped[bool] = mapped_column(default=False)
    done_at: Mapped[datetime | None]


class Mute(Base):
    """Snooze: escalation of one ticket, or of a department's tickets, is silenced until a time."""

    __tablename__ = "mutes"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str | None] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    department_code: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    until: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.String(500))
    created_by: Mapped[str] = mapped_column(sa.String(100))
    author: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class SeniorTeamCopy(Base):
    """The local copy of each department's senior team, replaced in one step per
    ``directory.senior_team.changed``: routing keeps working when the directory is down."""

    __tablename__ = "senior_teams"
    department_code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    department_id: Mapped[str | None] = mapped_column(sa.String(36))
    department_name: Mapped[str | None] = mapped_column(sa.String(200))
    cluster_code: Mapped[str | None] = mapped_column(sa.String(40))
    active: Mapped[bool] = mapped_column(default=True)
    roles: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # role -> {person_id, name, title} | None
    deputy_mayor: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    managing_director: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    team_event_time: Mapped[datetime | None]  # the event time of the copy: older events do not overwrite it
    updated_at: Mapped[datetime]


class PersonCopy(Base):
    """The directory's people (``directory.person.upserted``, and the holders named in
    ``senior_team.changed``): who a ticket may be assigned to."""

    __tablename__ = "people"
    person_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    title: Mapped[str | None] = mapped_column(sa.String(300))
    active: Mapped[bool] = mapped_column(default=True)
    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)  # lower case; where mail goes
    notify: Mapped[str] = mapped_column(sa.String(20), default="immediate", server_default="immediate")  # immediate | digest
    updated_at: Mapped[datetime]


class IndicatorSeen(Base):
    """What escalation knows of indicators: the last status event seen of each (any of
    breached, recovered, status_changed). Manual flags that name an indicator are checked here."""

    __tablename__ = "indicators_seen"
    indicator_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    indicator_code: Mapped[str] = mapped_column(sa.String(100), index=True)
    indicator_name: Mapped[str] = mapped_column(sa.String(300))
    department_code: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(10))
    updated_at: Mapped[datetime]


class TicketEpisode(Base):
    """Every breach episode a ticket has answered for (a new red period before staff resolve it
    joins the open ticket), and whether it recovered: a replayed breach of a past or recovered
    episode changes nothing."""

    __tablename__ = "ticket_episodes"
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tickets.id"), primary_key=True)
    episode_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True, index=True)
    recovered_at: Mapped[datetime | None]
