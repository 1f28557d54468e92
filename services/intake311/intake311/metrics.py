"""intake311 domain metrics (``citystat_intake311_*``). Counters and the histogram are written
where things happen (api process); the gauges are set from the database by a worker scheduler."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS_CREATED = Counter(
    "citystat_intake311_requests_created",
    "Service requests created, by service, channel and owning department",
    ["service_code", "channel", "department"],
)
OPEN_BACKLOG = Gauge(
    "citystat_intake311_open_backlog", "Open service requests by department", ["department"],
    multiprocess_mode="livemax",
)
REQUESTS_OVERDUE = Gauge(
    "citystat_intake311_requests_overdue", "Open service requests past their expected time, by department",
    ["department"], multiprocess_mode="livemax",
)
FEEDBACK_SCORE = Histogram(
    "citystat_intake311_feedback_score", "Customer satisfaction scores (1-5) by department", ["department"],
    buckets=(1, 2, 3, 4, 5),
)


def set_backlog(open_by_dept: dict[str, int], overdue_by_dept: dict[str, int], departments: list[str]) -> None:
    for dept in set(departments) | open_by_dept.keys() | overdue_by_dept.keys():
        OPEN_BACKLOG.labels(dept).set(open_by_dept.get(dept, 0))
        REQUESTS_OVERDUE.labels(dept).set(overdue_by_dept.get(dept, 0))
