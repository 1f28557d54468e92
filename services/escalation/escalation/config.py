"""``ESCALATION_*`` settings; KAFKA_BOOTSTRAP, API_KEYS_FILE and CITY_TIMEZONE are shared."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from citystat_common.settings import ServiceSettings, service_settings_config


class Settings(ServiceSettings):
    model_config = service_settings_config("ESCALATION_")
    service_name: str = "escalation"
    port: int = 8003
    database_url: str = "sqlite+aiosqlite:///var/escalation.db"

    consumer_group: str = "escalation"  # tests use their own so that offsets never cross

    # The directory's /routing API: timeout per attempt, retries, then a circuit breaker.
    directory_url: str = "http://127.0.0.1:8004"
    directory_timeout: float = Field(1.0, gt=0, le=30)
    directory_retries: int = Field(2, ge=0, le=10)
    breaker_failures: int = Field(3, ge=1, le=100, description="consecutive failures that open the breaker")
    breaker_reset_seconds: float = Field(30.0, gt=0, description="how long the breaker stays open before a trial call")

    # Severity bands on the size of the miss (0.15 = 15% worse): >= bands[0] -> 1 critical,
    # >= bands[1] -> 2 high, >= bands[2] -> 3 medium, else 4 low; a critical indicator is one step worse.
    severity_bands: list[float] = Field(default_factory=lambda: [0.5, 0.25, 0.1])
    manual_default_severity: int = Field(3, ge=1, le=4)

    # Policy delays are multiplied by this factor and, when it is not 1, counted in calendar
    # time (a business day = the calendar's working day): 1/60 turns 4 business hours into
    # 4 minutes, so `make demo` shows a ticket climbing the chain within minutes.
    delay_scale: float = Field(1.0, gt=0, le=1000)

    scheduler_interval: float = Field(5.0, gt=0, le=3600, description="seconds between scans for due tickets")
    scheduler_batch: int = Field(50, ge=1, le=1000)
    gauge_interval: float = Field(15.0, gt=0, le=3600)

    # Notifiers: "log" always available; "webhook" needs webhook_url (POST, HMAC-SHA256 signed body).
    notifiers: list[str] = Field(default_factory=lambda: ["log"])
    webhook_url: str | None = None
    # No default: a secret everybody knows signs nothing. Required (and checked) when the webhook is on.
    webhook_secret: str | None = Field(None, repr=False)
    webhook_timeout: float = Field(2.0, gt=0, le=60)
    notify_max_attempts: int = Field(5, ge=1, le=50)
    notify_interval: float = Field(2.0, gt=0, le=3600)
    # A claimed batch whose worker died comes back after this lease (then it is sent again, same Message-ID).
    notify_lease_seconds: float = Field(60.0, gt=0, le=3600)
    # Email goes out whenever SMTP_HOST is set (make run: the local mail server on 127.0.0.1:8025):
    # to the people a ticket is routed to, with their directory email. How long before an
    # acknowledgement expires its author is warned (scaled by delay_scale, like every delay).
    ack_warning_hours: float = Field(1.0, gt=0, le=72)

    @field_validator("severity_bands")
    @classmethod
    def _bands(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or sorted(v, reverse=True) != v or any(b < 0 for b in v):
            raise ValueError("severity_bands must be three decreasing non-negative numbers, e.g. [0.5, 0.25, 0.1]")
        return v

    @field_validator("notifiers")
    @classmethod
    def _notifiers(cls, v: list[str]) -> list[str]:
        unknown = set(v) - {"log", "webhook", "email"}
        if unknown:
            raise ValueError(f"unknown notifiers {sorted(unknown)}; available: log, webhook, email")
        return v

    @property
    def webhook_on(self) -> bool:
        return bool(self.webhook_url) or "webhook" in self.notifiers

    @property
    def email_on(self) -> bool:
        return self.smtp_host is not None

    @model_validator(mode="after")
    def _webhook(self) -> Settings:
        if "email" in self.notifiers and not self.email_on:
            raise ValueError("the email notifier is on but SMTP_HOST is not set: name the city's mail relay "
                             "(make run uses its local mail server, SMTP_HOST=127.0.0.1 SMTP_PORT=8025)")
        if not self.webhook_on:
            return self
        if not self.webhook_url:
            raise ValueError("the webhook notifier is on but ESCALATION_WEBHOOK_URL is not set")
        secret = (self.webhook_secret or "").strip()
        if not secret:
            raise ValueError("the webhook notifier is on (ESCALATION_WEBHOOK_URL is set) but ESCALATION_WEBHOOK_SECRET "
                             "is not: set a random secret of at least 16 characters, shared with the receiver")
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError("ESCALATION_WEBHOOK_SECRET is a placeholder or shorter than 16 characters: anyone could "
                             "sign notifications with it; set a random secret (e.g. `openssl rand -hex 32`)")
        return self


# Values copied from examples: refused even when long enough.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "change-me-please", "secret", "default", "password", "webhook-secret"}
