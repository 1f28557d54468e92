"""Prometheus metrics shared by every service.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` sets one folder per service), the api
and worker processes of a service write to it and the api's ``/metrics`` reads them all,
so one scrape sees the whole service. Without it (tests), each process has its registry.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import values as _values
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from citystat_common.logging import access_line

# ASGI scope key: seconds a long poll waited (citystat_common.longpoll), left out of its latency
WAITED_KEY = "long_poll_waited_s"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _ProcessId:
    """``os.getpid()`` read once and again after a fork. In multiprocess mode prometheus_client
    asks for the pid on every increment (to notice a fork), and on this platform's VMs a getpid
    system call costs microseconds: ~3% of the intake api's CPU."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        os.register_at_fork(after_in_child=self.refresh)

    def refresh(self) -> None:
        self.pid = os.getpid()

    def __call__(self) -> int:
        return self.pid


# Every metric value made from here on uses it. All of this code base's metrics are labelled, so
# no value exists before this module is imported (a value made earlier would keep the default
# class, and two classes would each map the same per-process file).
if multiprocess_enabled():
    _values.ValueClass = _values.MultiProcessValue(process_identifier=_ProcessId())

HTTP_REQUESTS = Counter(
    "citystat_http_requests_total", "HTTP requests by route template", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "citystat_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("citystat_events_published_total", "Events published by the outbox relay", ["service", "type"])
EVENTS_CONSUMED = Counter("citystat_events_consumed_total", "Events processed by consumers", ["service", "type"])
EVENTS_DUPLICATE = Counter("citystat_events_duplicate_total", "Redelivered events skipped by the inbox", ["service", "type"])
EVENTS_FAILED = Counter("citystat_events_failed_total", "Event handler failures (each attempt)", ["service", "type"])
EVENTS_DEAD_LETTERED = Counter(
    "citystat_events_dead_lettered_total", "Events sent to a dead-letter topic", ["service", "topic", "type"]
)
# A group commit's batches (citystat_common.batching): how many requests share a transaction, and
# how long its write takes from the first statement to the commit (what every request in it waits).
GROUP_COMMIT_SIZE = Histogram(
    "citystat_group_commit_batch_size", "Items written per group-commit transaction", ["name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
GROUP_COMMIT_SECONDS = Histogram(
    "citystat_group_commit_write_seconds", "Time to write and commit one group-commit batch", ["name"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
# A consumer's batch (citystat_common.consumer): from its events parsed to its transaction committed,
# inbox included; what the last event of a fetch waits before its effects are readable.
CONSUMER_BATCH_SECONDS = Histogram(
    "citystat_consumer_batch_seconds", "Time to apply and commit one consumer batch", ["service", "group"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
OUTBOX_BACKLOG = Gauge(
    "citystat_outbox_backlog", "Outbox rows waiting to be published", ["service"], multiprocess_mode="livemax"
)
OUTBOX_OLDEST_AGE = Gauge(
    "citystat_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row", ["service"],
    multiprocess_mode="livemax",
)
CONSUMER_LAG = Gauge(
    "citystat_consumer_lag", "Approximate consumer lag (messages) per topic partition",
    ["service", "topic", "partition"], multiprocess_mode="livemax",
)
BROKER_RESETS = Counter(
    "citystat_broker_resets_total",
    "Times the relay found the broker had lost records it acknowledged, and published them again",
    ["service"],
)
BROKER_UP = Gauge("citystat_broker_up", "1 when the relay could reach the broker", ["service"], multiprocess_mode="livemax")
CONSUMER_PAUSED = Gauge(
    "citystat_consumer_paused", "1 while a consumer waits on a record for the database or broker to come back",
    ["service", "group"], multiprocess_mode="livemax",
)
DATABASE_UP = Gauge(
    "citystat_database_up", "1 when the worker's last database statement succeeded", ["service"],
    multiprocess_mode="livemin",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:  # a killed child nobody has reaped yet is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True  # no /proc: trust kill(0)


def remove_dead_process_gauges(path: str | None = None) -> list[int]:
    """Remove the live* gauge files of processes that no longer exist. A worker killed -9 never
    runs prometheus_client's exit hook, and its last values (a backlog of 1, broker_up 1) would be
    read by livemax/livemin for ever. Counters and histograms stay: they are totals."""
    path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not os.path.isdir(path):
        return []
    dead: set[int] = set()
    for name in os.listdir(path):
        if name.startswith("gauge_live") and name.endswith(".db"):
            pid_text = name[:-3].rpartition("_")[2]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                dead.add(int(pid_text))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return sorted(dead)


def render_metrics() -> tuple[bytes, str]:
    if multiprocess_enabled():
        remove_dead_process_gauges()  # at every scrape: what is read is what live processes say
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


async def metrics_endpoint(_: Request) -> Response:
    body, ctype = render_metrics()
    return Response(body, media_type=ctype)


def _route_template(scope: Scope) -> str:
    # The router records the matched route in the scope; raw paths would explode the label set.
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Counts and times requests, labelled by route template (``/departments/{code}``), not raw path."""

    def __init__(self, app: ASGIApp, service: str, access_log: bool = True):
        self.app = app
        self.service = service
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded: route templates x statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            elapsed = time.perf_counter() - start
            # a long poll's wait (citystat_common.longpoll) is the client's choice, not the server's work
            waited = scope.get(WAITED_KEY, 0.0)
            elapsed -= waited
            key = (method, route, status["code"])
            children = self._children.get(key)
            if children is None:  # labels() per request costs more than the increment itself
                children = self._children[key] = (
                    HTTP_REQUESTS.labels(self.service, method, route, str(status["code"])),
                    HTTP_LATENCY.labels(self.service, method, route),
                )
            children[0].inc()
            children[1].observe(elapsed)
            if self.access_log and route not in ("/metrics", "/healthz"):
                # One structured line per request, with the correlation id, so a chain can be followed.
                if waited:
                    access_line(method=method, route=route, status=status["code"], ms=round(elapsed * 1000, 1),
                                waited_ms=round(waited * 1000, 1))
                else:
                    access_line(method=method, route=route, status=status["code"], ms=round(elapsed * 1000, 1))
