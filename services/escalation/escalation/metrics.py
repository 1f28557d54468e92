"""Escalation domain metrics (``citystat_escalation_*``). State gauges are refreshed from the
database by a worker scheduler; counters and the histogram move with the changes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OPEN_TICKETS = Gauge(
    "citystat_escalation_open_tickets", "Open tickets (open, acknowledged, in progress)",
    ["department", "level", "severity"], multiprocess_mode="livemax",
)
OVERDUE_TICKETS = Gauge(
    "citystat_escalation_overdue_tickets", "Unacknowledged tickets past their policy's acknowledgement time",
    ["department"], multiprocess_mode="livemax",
)
TICKETS_OPENED = Counter("citystat_escalation_tickets_opened_total", "Tickets opened", ["department", "source"])
ESCALATIONS = Counter("citystat_escalation_escalations_total", "Escalations to a higher level", ["department", "to_level"])
TIME_TO_ACK = Histogram(
    "citystat_escalation_time_to_ack_seconds", "Time from opening to first acknowledgement", ["department"],
    buckets=(900, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 5 * 86400, 10 * 86400, 30 * 86400),
)
NOTIFICATIONS = Counter(
    "citystat_escalation_notifications_total", "Notifications delivered or failed", ["channel", "outcome"]
)
