"""The people settings every service shares (unit, no I/O): sign-in turns on only when configured,
secrets must be real, an unset compose variable means unset, the role map names real scopes."""

import pytest
from pydantic import ValidationError

from citystat_common.people import PeopleSettings

SECRET = "s" * 8 + "-0123456789abcdef"


def test_sign_in_needs_issuer_client_secret_and_session_secret(monkeypatch):
    for name in ("IDENTITY_ISSUER", "IDENTITY_CLIENT_SECRET", "SESSION_SECRET", "SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert not PeopleSettings().pages_sign_in and PeopleSettings().smtp() is None
    bearer_only = PeopleSettings(identity_issuer="https://login.example")
    assert not bearer_only.pages_sign_in
    full = PeopleSettings(identity_issuer="https://login.example", identity_client_secret=SECRET, session_secret=SECRET)
    assert full.pages_sign_in
    assert full.browser_url("127.0.0.1", 8003) == "http://127.0.0.1:8003"
    assert PeopleSettings(public_url="https://stat.city.gov/").browser_url("0.0.0.0", 8003) == "https://stat.city.gov"


def test_empty_values_are_unset_and_placeholders_are_refused(monkeypatch):
    monkeypatch.setenv("SESSION_SECRET", "")
    monkeypatch.setenv("SMTP_HOST", " ")
    settings = PeopleSettings()
    assert settings.session_secret is None and settings.smtp() is None
    for bad in ("change-me", "short"):
        with pytest.raises(ValidationError, match="real secret"):
            PeopleSettings(session_secret=bad)


def test_role_map_from_json_with_known_scopes_only(monkeypatch):
    monkeypatch.setenv("IDENTITY_ROLE_MAP", '{"Stat-Analysts": ["indicators:write"]}')
    assert PeopleSettings().identity_role_map == {"Stat-Analysts": ["indicators:write"]}
    monkeypatch.setenv("IDENTITY_ROLE_MAP", '{"x": ["wizard"]}')
    with pytest.raises(ValidationError, match="unknown scopes"):
        PeopleSettings()


def test_smtp_config():
    smtp = PeopleSettings(smtp_host="relay.city.gov", smtp_port=587, smtp_tls="starttls", smtp_username="u",
                          smtp_password="p", mail_from="Stat <stat@city.gov>").smtp()
    assert smtp is not None and (smtp.host, smtp.port, smtp.tls, smtp.sender) == ("relay.city.gov", 587, "starttls",
                                                                               "Stat <stat@city.gov>")
