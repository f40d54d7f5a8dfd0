"""Settings: built once from the environment (and `.env`) and passed down; never read elsewhere."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m|h|hour)\s*$")
RATE_SECONDS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `4h`, `1d`, `2w` -> timedelta."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (write 90s, 15m, 4h or 1d)")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=amount * UNIT_SECONDS[unit])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_rate(text: str) -> float:
    """`700/min`, `10/s`, `25000/h` -> requests per second."""
    match = RATE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate (write e.g. 700/min or 10/s)")
    return float(match.group(1)) / RATE_SECONDS[match.group(2)]


def _split_ids(value: object) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    ids = [str(item).strip() for item in items if str(item).strip()]
    for item in ids:
        if not re.fullmatch(r"[USW][A-Z0-9]{2,}", item):
            raise ValueError(f"{item!r} is not a Slack user id (U…) or user-group id (S…)")
    return ids


Duration = Annotated[timedelta, NoDecode]
IdList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    database_url: str = "sqlite:///migration-guard.db"

    guard_platform: str = "sandbox"
    guard_channel: str | None = None
    guard_approvers: IdList = Field(default_factory=list)
    guard_oncall: IdList = Field(default_factory=list)
    guard_import_tag: str = "migration_import"
    guard_remind_every: Duration = timedelta(hours=4)
    guard_escalate_after: int = Field(default=2, ge=1)
    guard_approval_ttl: Duration = timedelta(hours=24)
    guard_restore_approval: Literal["required", "oncall", "none"] = "required"
    guard_failure_alert: float = Field(default=0.02, gt=0, le=1)
    guard_api_token: SecretStr | None = None
    port: int = Field(default=3000, ge=1, le=65535)

    zendesk_subdomain: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    zendesk_oauth_token: SecretStr | None = None
    zendesk_url: str | None = None
    zendesk_rate_limit: str = "700/min"

    intercom_access_token: SecretStr | None = None
    intercom_url: str = "https://api.intercom.io"
    intercom_version: str = "2.16"
    intercom_rate_limit: str = "10000/min"

    @field_validator("guard_approvers", "guard_oncall", mode="before")
    @classmethod
    def _ids(cls, value: object) -> list[str]:
        return _split_ids(value)

    @field_validator("guard_remind_every", "guard_approval_ttl", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(str(value))

    @field_validator("guard_failure_alert", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().endswith("%"):
            return float(value.strip()[:-1]) / 100
        return value

    @field_validator("zendesk_rate_limit", "intercom_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("guard_import_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-:/.]+", value):
            raise ValueError(f"{value!r} is not a usable tag (letters, digits, _ - : / .)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        from bot.db import async_url

        try:
            async_url(value)
        except Exception as error:  # sqlalchemy's URL parser raises several kinds
            scheme = value.split(":", 1)[0]
            raise ValueError(
                f"unsupported database {scheme!r}: use postgresql://… or sqlite:///FILE"
            ) from error
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment; raise SettingsError naming the first bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"setting {name}: {message}") from None
