"""Who changed a request, as its history records it and as each reader sees it.

Every write stores the caller's ``Actor`` (citystat_common.auth): a person by name, email and how they
came in (page session or bearer token), or a machine key by its name. Notes intake311 writes itself
(a duplicate linked on arrival, a batch request accepted) are the "system"'s. Rows from before people
signed in (migration 0008) have a name and no kind: they read as that name, as they always did.

Staff read the person's name ("Closed by Ann Lee"); the public Open311 feed names no member of staff
(a key's name, as before, or "City staff"), and never an email.
"""

from __future__ import annotations

from typing import Any

from citystat_common.auth import Actor

SYSTEM_NAME = "intake311"
PUBLIC_STAFF = "City staff"
# What each kind of note says happened, for "<words> by <who>".
HISTORY_WORDS = {
    "created": "Received", "accepted": "Accepted", "acknowledged": "Acknowledged", "in_progress": "Work started",
    "closed": "Closed", "reopened": "Reopened", "transferred": "Transferred", "note": "Note",
    "merged": "Merged as a duplicate", "linked": "Linked as a duplicate", "unlinked": "No longer a duplicate",
}


def key_actor(name: str) -> Actor:
    return Actor(kind="key", name=name)


def note_author(actor: Actor | None) -> dict[str, Any]:
    """The status_notes columns of who wrote a note (None: intake311 itself)."""
    if actor is None:
        return {"author": SYSTEM_NAME, "author_kind": "system", "author_email": None, "author_via": None}
    return {"author": actor.name[:100], "author_kind": actor.kind, "author_email": actor.email,
            "author_via": actor.via}


def filed_by(actor: Actor) -> dict[str, Any]:
    """The service_requests columns of who filed a request."""
    return {"created_by": actor.name[:100], "created_by_kind": actor.kind, "created_by_email": actor.email,
            "created_by_via": actor.via}


def label(name: str, kind: str | None) -> str:
    """How staff read who it was: a person's name, "key <name>", or the system."""
    if kind == "key":
        return f"key {name}"
    if kind == "system":
        return "the 311 system"
    return name  # a person, or a row from before 0008 (its name as stored)


def public_author(name: str, kind: str | None) -> str:
    """Who it was, in the public feed: no member of staff by name."""
    return PUBLIC_STAFF if kind == "person" else name


def history_line(kind: str, name: str, author_kind: str | None) -> str:
    words = HISTORY_WORDS.get(kind, kind.replace("_", " ").capitalize())
    return f"{words} by {label(name, author_kind)}"
