"""Every setting creditwatch reads, from the environment and an optional YAML file.

Environment variables use the prefix ``CREDITWATCH_`` and ``__`` between nested parts
(``CREDITWATCH_TIKTOK__QPS=5``). Structured parts (webhook subscribers, thresholds) are easier
in YAML: name the file with ``CREDITWATCH_CONFIG_FILE``. The environment wins over the file.

Usage::

    settings = load_settings()          # raises SettingsError naming the bad setting
    settings.tiktok.access_token.get_secret_value()
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from config.api import ApiSettings
from config.ledger import Credits, LadderPrograms
from config.notify import NotifySettings, WebhookSubscriber
from config.text_list import split_list

__all__ = [
    "ENV_PREFIX",
    "DetectSettings",
    "NotifySettings",
    "PollSettings",
    "Settings",
    "SettingsError",
    "StreamSettings",
    "Thresholds",
    "TikTokSettings",
    "WebhookSubscriber",
    "load_settings",
]

ENV_PREFIX = "CREDITWATCH_"
REAL_API_BASE_URL = "https://business-api.tiktok.com/open_api/v1.3"


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it (env name and file path)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TikTokSettings(_Section):
    """Where the TikTok Business API is and how hard we may call it."""

    base_url: str = REAL_API_BASE_URL
    access_token: SecretStr = SecretStr("")
    bc_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    qps: float = Field(default=10.0, gt=0, le=1000)
    # Kept between the oldest and the next request of any 1 s window: absorbs the jitter
    # between when we send and when the API's limiter counts (0.1 s costs ~5 % of the bound).
    qps_margin_s: float = Field(default=0.1, ge=0, le=1)
    timeout_s: float = Field(default=15.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=50, ge=1, le=50)

    @field_validator("bc_ids", mode="before")
    @classmethod
    def _bc_ids_from_text(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("bc_ids")
    @classmethod
    def _bc_ids_are_ids(cls, value: list[str]) -> list[str]:
        for bc_id in value:
            if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", bc_id):
                raise ValueError(f"not a business center id: {bc_id!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class PollSettings(_Section):
    """How often each source is polled, in real seconds."""

    balance_interval_s: float = Field(default=300.0, gt=0)
    spend_interval_s: float = Field(default=900.0, gt=0)
    transaction_interval_s: float = Field(default=900.0, gt=0)
    report_interval_s: float = Field(default=3600.0, gt=0)
    bc_balance_interval_s: float = Field(default=900.0, gt=0)
    # Spend figures lag and are revised: every poll re-reads this many trailing days.
    spend_lookback_days: int = Field(default=7, ge=1, le=30)
    transaction_lookback_days: int = Field(default=7, ge=1, le=365)
    jitter_s: float = Field(default=0.0, ge=0)


class StreamSettings(_Section):
    """Names of the Redis streams and keys; one prefix keeps deployments apart."""

    prefix: str = Field(default="creditwatch", pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")
    maxlen: int = Field(default=1_000_000, ge=1000)
    consumer: str = Field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")
    reclaim_idle_ms: int = Field(default=60_000, ge=100)
    # Snapshots a detector reads, evaluates and commits together: larger batches mean fewer
    # round trips; each batch must still finish well within ``reclaim_idle_ms``.
    detect_batch: int = Field(default=500, ge=1, le=10_000)

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}:snapshots"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}:deadletter"

    def key(self, *parts: str) -> str:
        """A state key under the prefix: ``key("state", "123")`` -> ``creditwatch:state:123``."""
        return ":".join((self.prefix, *parts))


class Thresholds(_Section):
    """When a grant (ad credit) balance counts as low.

    ``low_percent`` is of the largest valid grant balance seen since the last top-up;
    ``low_amount`` is in the account's own currency. Either one crossing makes it low.
    ``hysteresis_percent`` keeps a balance jittering at the line from firing again and again.
    """

    low_percent: Decimal | None = Field(default=Decimal("20"), ge=0, le=100)
    low_amount: Decimal | None = Field(default=None, ge=0)
    hysteresis_percent: Decimal = Field(default=Decimal("10"), ge=0, le=100)


class DetectSettings(_Section):
    """Alert thresholds: a default, and per-advertiser overrides keyed by advertiser_id."""

    thresholds: Thresholds = Thresholds()
    advertisers: dict[str, Thresholds] = Field(default_factory=dict)
    # The credit lifecycle rules (service/detect/); hours and days are API time.
    depletion_horizon_h: float = Field(default=72.0, gt=0)
    expiring_horizons_days: list[int] = Field(default_factory=lambda: [14, 7, 3, 1], min_length=1)
    burn_days: int = Field(default=3, ge=1, le=30)
    cash_runway_days: Decimal = Field(default=Decimal(3), gt=0)
    discount_cap_near_percent: Decimal = Field(default=Decimal(80), gt=0, lt=100)
    ladder_closing_h: float = Field(default=48.0, gt=0)
    stale_intervals: float = Field(default=3.0, gt=1)
    reconcile_after_h: float = Field(default=24.0, ge=0)
    reconcile_tolerance: Decimal = Field(default=Decimal("1.00"), ge=0)
    reconcile_tolerance_percent: Decimal = Field(default=Decimal(1), ge=0, le=100)
    # Issued/expired transactions older than this when first seen are recorded, not notified.
    event_window_h: float = Field(default=48.0, gt=0)

    def thresholds_for(self, advertiser_id: str) -> Thresholds:
        return self.advertisers.get(advertiser_id, self.thresholds)


class Settings(BaseSettings):
    """All of creditwatch's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    config_file: Path | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".creditwatch")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    tiktok: TikTokSettings = TikTokSettings()
    poll: PollSettings = PollSettings()
    streams: StreamSettings = StreamSettings()
    detect: DetectSettings = DetectSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()
    credits: Credits = Field(default_factory=list)
    ladder_programs: LadderPrograms = Field(default_factory=list)

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix|redis\+sentinel)://", value):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def require_api_access(self) -> None:
        """Raise SettingsError unless the real API can be polled (token and BC ids set)."""
        if not self.tiktok.access_token.get_secret_value():
            raise SettingsError(f"{ENV_PREFIX}TIKTOK__ACCESS_TOKEN: required to poll the API")
        if not self.tiktok.bc_ids:
            raise SettingsError(f"{ENV_PREFIX}TIKTOK__BC_IDS: at least one business center id")


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """``("tiktok", "qps")`` -> ``CREDITWATCH_TIKTOK__QPS (tiktok.qps)``."""
    names = [str(part) for part in loc]
    # List positions cannot be set from the environment: name the list, keep the path exact.
    env_parts: list[str] = []
    for part in names:
        if part.isdigit():
            break
        env_parts.append(part.upper())
    env = ENV_PREFIX + "__".join(env_parts)
    return f"{env} ({'.'.join(names)})"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    # Never echo the input: it may be a secret.
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{_setting_name(tuple(first['loc']))}: {message}"


# Read by the test suite, not by the service.
_NOT_SETTINGS = frozenset({"TEST_REDIS_URL"})


def _check_env_names() -> None:
    """A misspelt variable would otherwise be ignored in silence."""
    known = {name.upper() for name in Settings.model_fields}
    for name in os.environ:
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in _NOT_SETTINGS:
            continue
        if rest.split("__", 1)[0] not in known:
            raise SettingsError(f"{name}: unknown setting")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and YAML file) into Settings, or raise SettingsError."""
    _check_env_names()
    config_file = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{ENV_PREFIX}CONFIG_FILE: no such file: {config_file}")
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except (ValueError, OSError, yaml.YAMLError) as error:  # YAML or JSON-list syntax
        raise SettingsError(f"configuration could not be read: {error}") from None
