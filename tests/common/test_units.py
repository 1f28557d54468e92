"""Plumbing units without I/O: envelope, settings, auth."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from citystat_common.auth import KeyStore, generate_demo_keys, hash_key
from citystat_common.events import (
    EVENT_TYPES,
    EventRejected,
    IndicatorBreached,
    PersonUpserted,
    make_event,
    parse_event,
)
from citystat_common.testing import midday_timezone
from directory.config import Settings


def test_envelope_round_trip_and_type_registry():
    ev = make_event(PersonUpserted(person_id="p1", name="Ann"), subject="p1", correlation_id="c")
    env, payload = parse_event(ev.to_bytes())
    assert env == ev and payload == PersonUpserted(person_id="p1", name="Ann")
    assert env.type == "directory.person.upserted" and env.source == "directory" and env.topic == "directory.changes"
    assert uuid.UUID(env.id) and env.time.tzinfo is not None
    # every design.md type is registered, on its topic
    assert {t.split(".", 1)[1] for t in EVENT_TYPES} >= {
        "request.created", "request.updated", "request.closed", "request.feedback",
        "indicator.breached", "indicator.recovered", "indicator.status_changed",
        "ticket.opened", "ticket.escalated", "ticket.acknowledged", "ticket.resolved", "ticket.promoted",
        "department.upserted", "senior_team.changed", "person.upserted",
    }


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"schema_version": 99}).encode(), "schema_version"),
        (json.dumps({"schema_version": 1, "type": "x.y", "source": "x", "subject": "s", "data": {}}).encode(), "unknown event type"),
        (json.dumps({"schema_version": 1, "type": "directory.person.upserted", "source": "d", "subject": "s", "data": {"name": 3}}).encode(), "payload"),
    ],
)
def test_parse_rejects_what_no_retry_can_fix(raw, reason):
    with pytest.raises(EventRejected, match=reason):
        parse_event(raw)


def test_payloads_reject_unknown_fields():
    with pytest.raises(ValidationError):
        IndicatorBreached.model_validate({"bogus": 1})


def test_settings_fail_fast(monkeypatch):
    monkeypatch.setenv("DIRECTORY_DATABASE_URL", "mysql://nope")
    with pytest.raises(ValidationError, match="database_url"):
        Settings()
    monkeypatch.setenv("DIRECTORY_DATABASE_URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("CITY_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("CITY_TIMEZONE", "America/Chicago")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9999")
    monkeypatch.setenv("DIRECTORY_PORT", "9000")
    s = Settings()
    assert (s.kafka_bootstrap, s.port, s.city_timezone) == ("broker:9999", 9000, "America/Chicago")


def test_keys_are_stored_hashed_and_scoped(tmp_path):
    plain, hashed = generate_demo_keys()
    assert plain["admin"] not in json.dumps(hashed)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(hashed))
    store = KeyStore.from_settings(path, [])
    admin, staff = store.authenticate(plain["admin"]), store.authenticate(plain["staff"])
    assert admin.has("directory:write") and admin.has("staff")
    assert staff.has("staff") and not staff.has("directory:write")
    assert store.authenticate("nope") is None and store.authenticate(None) is None
    with pytest.raises(ValueError, match="unknown scopes"):
        KeyStore([{"name": "x", "sha256": hash_key("k"), "scopes": ["root"]}])
    # a digest written in capitals (as some tools print them) still matches
    upper = KeyStore([{"name": "ops", "sha256": hash_key("k").upper(), "scopes": ["staff"]}])
    assert upper.authenticate("k").name == "ops" and upper.authenticate("K") is None


def test_the_metrics_process_id_is_read_again_in_a_forked_child():
    """prometheus_client's multiprocess files are named by pid; the cached id must follow a fork."""
    import os

    from citystat_common.metrics import _ProcessId

    pid = _ProcessId()
    assert pid() == os.getpid()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(w, f"{pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(w)
    seen, actual = os.read(r, 100).decode().split()
    os.waitpid(child, 0)
    assert seen == actual == str(child)
    assert pid() == os.getpid()


def test_the_access_line_is_the_line_structlog_would_write(monkeypatch):
    """The access line skips structlog's processors (a line per request); what it writes must not
    differ from what they would: the same keys in the same order, the same values."""
    import io
    import sys

    import structlog

    from citystat_common.logging import access_line, configure_logging, correlation_id_var

    real = sys.stdout
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    token = correlation_id_var.set("c0ffee")
    try:
        configure_logging("intake311", "INFO")
        fields = {"method": "POST", "route": "/requests.{fmt}", "status": 201, "ms": 1.5}
        access_line(**fields)
        structlog.get_logger("citystat.access").info("http_request", **fields)
        fast, slow = (json.loads(line) for line in buf.getvalue().splitlines())
        assert list(fast) == list(slow)
        assert {k: v for k, v in fast.items() if k != "timestamp"} == {k: v for k, v in slow.items() if k != "timestamp"}
        assert fast["correlation_id"] == "c0ffee" and fast["timestamp"].endswith("Z")
        configure_logging("intake311", "WARNING")  # below the level: nothing
        access_line(**fields)
        assert len(buf.getvalue().splitlines()) == 2
    finally:
        correlation_id_var.reset(token)
        monkeypatch.setattr(sys, "stdout", real)
        configure_logging("test", "INFO")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.sampled_from([UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])))
def test_the_midday_zone_puts_now_at_midday_on_its_utc_date(now):
    zone = midday_timezone(now)
    local = now.astimezone(ZoneInfo(zone))
    assert local.date() == now.astimezone(UTC).date() and local.hour == 12
    # so an event eleven hours either side of now is on the same local date (elapsed time: UTC arithmetic)
    utc = now.astimezone(UTC)
    assert (utc - timedelta(hours=11)).astimezone(ZoneInfo(zone)).date() == local.date()
    assert (utc + timedelta(hours=11)).astimezone(ZoneInfo(zone)).date() == local.date()
