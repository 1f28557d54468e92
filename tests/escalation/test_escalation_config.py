"""Settings refuse a webhook notifier without a real secret, at start-up, with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from escalation.config import Settings
from escalation.notifiers import build_notifiers

URL = "https://hooks.example.org/citystat"
GOOD = "7f3a9c0e5b2d4816a0c3e9f1"


@pytest.mark.parametrize("env", [
    {"ESCALATION_WEBHOOK_URL": URL},  # missing
    {"ESCALATION_WEBHOOK_URL": URL, "ESCALATION_WEBHOOK_SECRET": "change-me"},  # the old default
    {"ESCALATION_WEBHOOK_URL": URL, "ESCALATION_WEBHOOK_SECRET": "   "},
    {"ESCALATION_WEBHOOK_URL": URL, "ESCALATION_WEBHOOK_SECRET": "short"},
    {"ESCALATION_NOTIFIERS": '["log", "webhook"]', "ESCALATION_WEBHOOK_SECRET": GOOD},  # on, but nowhere to send
])
def test_webhook_on_without_a_real_secret_is_refused(env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "ESCALATION_WEBHOOK_" in str(exc.value)


def test_webhook_with_a_secret_and_log_only_without_one(monkeypatch):
    assert Settings().webhook_secret is None and "webhook" not in build_notifiers(Settings())
    monkeypatch.setenv("ESCALATION_WEBHOOK_URL", URL)
    monkeypatch.setenv("ESCALATION_WEBHOOK_SECRET", GOOD)
    settings = Settings()
    assert build_notifiers(settings)["webhook"].secret == GOOD  # type: ignore[attr-defined]
    assert GOOD not in repr(settings)


def test_email_is_on_with_an_smtp_relay_and_refused_without_one():
    import pytest
    from pydantic import ValidationError

    from escalation.config import Settings

    assert Settings(smtp_host="127.0.0.1", smtp_port=8025).email_on
    assert not Settings().email_on
    with pytest.raises(ValidationError, match="SMTP_HOST is not set"):
        Settings(notifiers=["log", "email"])
