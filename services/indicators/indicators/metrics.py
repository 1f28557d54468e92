"""Domain metrics of the indicators service."""

from prometheus_client import Counter, Gauge

BY_STATUS = Gauge(
    "citystat_indicators_by_status", "Indicators per department and published status",
    ["department", "status"], multiprocess_mode="livemax",
)
OBSERVATIONS = Counter("citystat_indicators_observations_total", "Observation values stored (new or changed)", ["department"])
EVALUATIONS = Counter("citystat_indicators_evaluations_total", "Period evaluations by resulting status", ["status"])
BREACHES = Counter("citystat_indicators_breaches_total", "Breach episodes opened (entering red)", ["department"])
