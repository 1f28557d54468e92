"""Which channel a request came through, and who may close one at first contact.

The channel feeds the indicators (volume and first-contact resolution by channel), so it is not
the caller's to declare: a key with a channel (``"channel"`` in its key entry) posts as that
channel, and naming another is refused (400) rather than silently recorded otherwise. A key without
a channel (admin, a staff tool) may name any; with none named, the setting's default. Closing a
request at first contact is something staff do on the phone, at a counter or in the field: a web
or app report is never "resolved at first contact".
"""

from __future__ import annotations

from citystat_common.auth import Principal

STAFF_CHANNELS = ("phone", "walk_in", "frontline")


def resolve_channel(principal: Principal, posted: str | None, default: str) -> tuple[str, list[tuple[int, str]]]:
    """(the channel to record, Open311 errors)."""
    if principal.channel:
        if posted is not None and posted != principal.channel:
            return principal.channel, [(400, f"this api_key submits as channel {principal.channel!r}; "
                                             f"channel={posted!r} is not its own (leave channel out)")]
        return principal.channel, []
    return posted or default, []


def first_contact_errors(channel: str, first_contact_resolution: bool) -> list[tuple[int, str]]:
    if first_contact_resolution and channel not in STAFF_CHANNELS:
        return [(400, f"first_contact_resolution is for staff channels ({', '.join(STAFF_CHANNELS)}); "
                      f"a request through {channel!r} is never closed at first contact")]
    return []
