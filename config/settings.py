"""Every setting creditwatch reads, from the environment and an optional YAML file.

Environment variables use the prefix ``CREDITWATCH_`` and ``__`` between nested parts
(``CREDITWATCH_TIKTOK__QPS=5``). Structured parts (receivers, routes, thresholds) are easier
in YAML: name the file with ``CREDITWATCH_CONFIG_FILE``. The environment wins over the file.

Usage::

    settings = load_settings()          # raises SettingsError naming the bad setting
    settings.tiktok.resolved_connections()   # the shorthand as one connection, "default"
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from config.api import ApiSettings
from config.connections import (
    DEFAULT_CONNECTION,
    DISCOVER,
    BcIdsSetting,
    ConnectionSettings,
    check_connections,
)
from config.fields import APP_ID_PATTERN, Section, check_http_url
from config.input_limits import UnreadableConfig, check_json_depth, load_yaml_file
from config.keyspace import Keyspace
from config.ledger import Credits, LadderPrograms
from config.notify import NotifySettings

__all__ = [
    "ENV_PREFIX",
    "RETIRED",
    "TIER_LIMITS",
    "DetectSettings",
    "EndpointLimits",
    "NotifySettings",
    "PollSettings",
    "Settings",
    "SettingsError",
    "StreamSettings",
    "Thresholds",
    "TikTokSettings",
    "load_settings",
    "masked_url",
]

ENV_PREFIX = "CREDITWATCH_"
REAL_API_BASE_URL = "https://business-api.tiktok.com/open_api/v1.3"


# Upper bounds of settings that feed time arithmetic: far beyond any sensible value, and far
# below where adding them to a date overflows.
_WEEK_S = 7 * 86_400
_YEAR_H = 366 * 24


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it (env name and file path)."""


# RETIRED SETTINGS: the one place that knows the earlier forms. A config (YAML or environment)
# that still uses one is refused at load with its replacement, never half read: dropping the
# key in silence would drop the alerts it routed. Path -> what to write instead.
RETIRED: dict[tuple[str, ...], str] = {
    ("notify", "webhooks"): (
        "retired; declare notify.receivers (type: webhook, with name, url, secret) and a "
        "notify.route (match: {kind: [...]}) for each (README, Routing)"
    ),
}


Tier = Literal["basic", "advanced", "premium", "ultimate"]

# TikTok's rate-limit tiers: (QPS, QPM, QPD) per developer app (/work/shared/tiktok-api.md).
# Only Basic's QPD (864,000) is published; a higher tier is assumed to allow at least as many
# calls a day as Basic, so the others keep Basic's figure until TikTok says otherwise.
TIER_LIMITS: dict[str, tuple[float, int, int]] = {
    "basic": (10, 600, 864_000),
    "advanced": (20, 1_200, 864_000),
    "premium": (30, 1_800, 864_000),
    "ultimate": (50, 3_000, 864_000),
}
_ENDPOINT_PATH = r"^/[a-z0-9_]+(/[a-z0-9_]+)*/$"
# A limit, the one over the next smaller window it must hold, and their units.
_WIDER_WINDOW = {"qpm": ("qps", "second", "minute"), "qpd": ("qpm", "minute", "day")}


def _below_shorter_window(limits: Mapping[str, float | None], name: str, owner: str) -> str | None:
    """What is wrong if ``limits[name]`` (qpm or qpd) is below the next shorter window's limit
    (a minute can never hold fewer requests than a second); ``owner`` names whose that is."""
    smaller, unit, period = _WIDER_WINDOW[name]
    value, limit = limits.get(name), limits.get(smaller)
    if value is None or limit is None or value >= limit:
        return None
    return f"{value:g} per {period} is below {owner}{smaller} ({limit:g} per {unit})"


class EndpointLimits(Section):
    """One endpoint's own budget; an unset figure is the app's (tier or explicit)."""

    qps: float | None = Field(default=None, gt=0, le=1000)
    qpm: int | None = Field(default=None, gt=0)
    qpd: int | None = Field(default=None, gt=0)


class TikTokSettings(Section):
    """Where the TikTok Business API is, how hard we may call it, and with which tokens."""

    base_url: str = REAL_API_BASE_URL
    # The developer app: its id and secret are needed to turn an auth code into a token.
    app_id: str = Field(default="", pattern=APP_ID_PATTERN)
    app_secret: SecretStr = SecretStr("")
    # The shorthand for one connection (named "default"); or ``connections`` for several.
    access_token: SecretStr = SecretStr("")
    bc_ids: BcIdsSetting = Field(default_factory=list)
    # The app's rate-limit tier gives qps/qpm/qpd; each of them set explicitly wins over it.
    tier: Tier = "basic"
    qps: float = Field(default=10.0, gt=0, le=1000)
    qpm: int = Field(default=600, gt=0)
    qpd: int = Field(default=864_000, gt=0)
    # The share of the app's budget (every limit above) creditwatch may use, when other tools
    # call the same developer app (or replicas split it): 0.5 of 10 QPS / 600 QPM is 5 / 300.
    budget_share: float = Field(default=1.0, gt=0, le=1)
    # Endpoints with a budget of their own (path -> limits); the others share the app's one.
    endpoint_limits: dict[str, EndpointLimits] = Field(default_factory=dict)
    # A throttle (40100...) answered for this long with no success on the endpoint is a
    # suspension: the endpoint pauses for ``suspension_s`` (0: never pause, retry and give up).
    suspend_after_s: float = Field(default=5.0, ge=0, le=600)
    suspension_s: float = Field(default=300.0, ge=0, le=86_400)
    # Kept between the oldest and the next request of any 1 s window: absorbs the jitter
    # between when we send and when the API's limiter counts (0.1 s costs ~5 % of the bound).
    qps_margin_s: float = Field(default=0.1, ge=0, le=1)
    timeout_s: float = Field(default=15.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=50, ge=1, le=50)
    # How often the Business Centers of ``bc_ids: discover`` connections are listed again.
    discover_interval_s: float = Field(default=3600.0, gt=0)
    connections: list[ConnectionSettings] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _tier_gives_the_limits(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        limits = TIER_LIMITS.get(str(data.get("tier", "basic")))
        if limits is None:
            return data  # the tier field itself reports the bad value
        given = {name: data.get(name) for name in ("qps", "qpm", "qpd")}
        tier = dict(zip(("qps", "qpm", "qpd"), limits, strict=True))
        return {**data, **{k: tier[k] for k, v in given.items() if v is None}}

    @field_validator("qpm", "qpd")
    @classmethod
    def _holds_the_smaller_window(cls, value: int, info: ValidationInfo) -> int:
        # Fields validate in order: qps before qpm, qpm before qpd.
        name = str(info.field_name)
        problem = _below_shorter_window({**info.data, name: value}, name, "tiktok.")
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("endpoint_limits")
    @classmethod
    def _endpoint_limits_agree(
        cls, value: dict[str, EndpointLimits], info: ValidationInfo
    ) -> dict[str, EndpointLimits]:
        for path, own in value.items():
            if not re.fullmatch(_ENDPOINT_PATH, path):
                raise ValueError(f"{path!r} is not an endpoint path such as /bc/balance/get/")
            # An unset figure is the app's, so the check is on what the endpoint will get.
            limits = {
                name: mine if (mine := getattr(own, name)) is not None else info.data.get(name)
                for name in ("qps", "qpm", "qpd")
            }
            for name in ("qpm", "qpd"):
                if (problem := _below_shorter_window(limits, name, "its ")) is not None:
                    raise ValueError(f"{path}: {problem}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        return check_http_url(value).rstrip("/")

    @field_validator("connections")
    @classmethod
    def _one_form_unique_names(
        cls, value: list[ConnectionSettings], info: ValidationInfo
    ) -> list[ConnectionSettings]:
        shorthand = info.data.get("access_token")
        return check_connections(
            value,
            shorthand=bool(shorthand is not None and shorthand.get_secret_value())
            or bool(info.data.get("bc_ids")),
            shorthand_names=f"{ENV_PREFIX}TIKTOK__ACCESS_TOKEN / {ENV_PREFIX}TIKTOK__BC_IDS",
        )

    def resolved_connections(self) -> list[ConnectionSettings]:
        """Every connection, the shorthand included (as ``default``); app_id filled in."""
        connections = list(self.connections)
        token = self.access_token.get_secret_value()
        if not connections and token and self.bc_ids:
            connections = [
                ConnectionSettings(
                    name=DEFAULT_CONNECTION, access_token=self.access_token, bc_ids=self.bc_ids
                )
            ]
        return [
            c if c.app_id else c.model_copy(update={"app_id": self.app_id}) for c in connections
        ]

    def for_connection(self, connection: ConnectionSettings) -> TikTokSettings:
        """These settings with ``connection``'s token: what one TikTokClient is built from."""
        return self.model_copy(
            update={"access_token": connection.access_token, "bc_ids": [], "connections": []}
        )

    def configured_bc_ids(self) -> list[str]:
        """The business center ids given in the settings (not the discovered ones)."""
        if not self.connections:
            return list(self.bc_ids) if isinstance(self.bc_ids, list) else []
        ids: dict[str, None] = {}
        for connection in self.connections:
            if isinstance(connection.bc_ids, list):
                ids.update(dict.fromkeys(connection.bc_ids))
        return list(ids)


class PollSettings(Section):
    """How often each source is polled, in real seconds."""

    balance_interval_s: float = Field(default=300.0, gt=0, le=_WEEK_S)
    spend_interval_s: float = Field(default=900.0, gt=0, le=_WEEK_S)
    transaction_interval_s: float = Field(default=900.0, gt=0, le=_WEEK_S)
    report_interval_s: float = Field(default=3600.0, gt=0, le=_WEEK_S)
    bc_balance_interval_s: float = Field(default=900.0, gt=0, le=_WEEK_S)
    # Spend figures lag and are revised: every poll re-reads this many trailing days.
    spend_lookback_days: int = Field(default=7, ge=1, le=30)
    transaction_lookback_days: int = Field(default=7, ge=1, le=365)
    jitter_s: float = Field(default=0.0, ge=0, le=3600)
    # ``continuous``: balances are swept again as soon as budget is left over (the interval is
    # then "at least this often"), at least ``balance_min_gap_s`` apart; ``interval``: only
    # every ``balance_interval_s``. Unset, the gap is 2 s (a tenth of the interval below 20 s).
    balance_sweeps: Literal["continuous", "interval"] = "continuous"
    balance_min_gap_s: float | None = Field(default=None, ge=0.01, le=3600)
    # An account the detector forecasts to run out (or cross its low line) before its next
    # sweep is polled on its own (keyword poll) every ``risk_repoll_s`` from that moment on.
    risk_polls: bool = True
    risk_repoll_s: float = Field(default=5.0, ge=0.5, le=3600)

    @field_validator("balance_min_gap_s")
    @classmethod
    def _gap_inside_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("balance_interval_s")
        if value is not None and interval is not None and value >= interval:
            raise ValueError(f"{value:g} s is not below poll.balance_interval_s ({interval:g} s)")
        return value

    @property
    def min_gap_s(self) -> float:
        """The gap between two continuous balance sweeps of one business center."""
        if self.balance_min_gap_s is not None:
            return self.balance_min_gap_s
        return min(2.0, self.balance_interval_s / 10)


class StreamSettings(Section):
    """Names of the Redis streams and keys; one prefix keeps deployments apart."""

    prefix: str = Field(default="creditwatch", pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")
    maxlen: int = Field(default=1_000_000, ge=1000)
    consumer: str = Field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")
    reclaim_idle_ms: int = Field(default=60_000, ge=100)
    # Snapshots a detector reads, evaluates and commits together: larger batches mean fewer
    # round trips; each batch must still finish well within ``reclaim_idle_ms``.
    detect_batch: int = Field(default=500, ge=1, le=10_000)
    # Alert transitions a notifier reads and routes together (one chain per advertiser, the
    # chains side by side): fewer stream reads and acks, overlapping Redis round trips.
    notify_batch: int = Field(default=100, ge=1, le=10_000)
    # The consumer groups a service process joins: both, or one, so detectors and notifiers
    # run (and scale) as separate processes and a delivery backlog takes no CPU from
    # detection. Every process creates both groups, so neither misses an entry.
    groups: Literal["all", "detectors", "notifiers"] = "all"
    # Replicas of the delivery side's master that a notifier batch's joins must reach (Redis
    # WAIT, up to ``JOIN_WAIT_MS``) before its entries are acknowledged. A shard's alerts
    # stream and the groups live on different masters of a Redis Cluster: a failover that
    # lost the last joins would otherwise have acknowledged their entries on a master that
    # survived, and a resolution whose firing was lost is never sent. 0: no waiting (a single
    # Redis, or replicas whose loss you accept).
    wait_replicas: int = Field(default=0, ge=0, le=16)

    # Accounts split over this many snapshot/alerts stream pairs (see config.keyspace); more
    # than one puts a Redis Cluster hash tag on every key. Changing it moves accounts between
    # shards: drain the streams first (README, "Running at scale").
    shards: int = Field(default=1, ge=1, le=1024)

    @field_validator("shards")
    @classmethod
    def _tags_fit_prefix(cls, shards: int, info: ValidationInfo) -> int:
        prefix = str(info.data.get("prefix", ""))
        if shards > 1 and ("{" in prefix or "}" in prefix):
            raise ValueError("above 1 needs a prefix without braces (keys get {sN} hash tags)")
        return shards

    @property
    def keyspace(self) -> Keyspace:
        """Every key and stream name (config.keyspace), for these prefix and shards."""
        return Keyspace(self.prefix, self.shards)

    @property
    def snapshots(self) -> str:
        """Shard 0's snapshot stream: the only one with ``shards: 1``."""
        return self.keyspace.snapshot_stream(0)

    @property
    def alerts(self) -> str:
        """Shard 0's alerts stream: the only one with ``shards: 1``."""
        return self.keyspace.alert_stream(0)

    @property
    def deadletter(self) -> str:
        return self.keyspace.deadletter_stream()

    def key(self, *parts: str) -> str:
        """A key of no shard: ``key("claim", "x")`` -> ``creditwatch:claim:x`` (``{g}``-tagged
        with several shards); shard keys are ``keyspace``'s."""
        return self.keyspace.key(*parts)


class Thresholds(Section):
    """When a grant (ad credit) balance counts as low.

    ``low_percent`` is of the largest valid grant balance seen since the last top-up;
    ``low_amount`` is in the account's own currency. Either one crossing makes it low.
    ``hysteresis_percent`` keeps a balance jittering at the line from firing again and again.
    """

    low_percent: Decimal | None = Field(default=Decimal("20"), ge=0, le=100)
    low_amount: Decimal | None = Field(default=None, ge=0)
    hysteresis_percent: Decimal = Field(default=Decimal("10"), ge=0, le=100)


class DetectSettings(Section):
    """Alert thresholds: a default, and per-advertiser overrides keyed by advertiser_id."""

    thresholds: Thresholds = Thresholds()
    advertisers: dict[str, Thresholds] = Field(default_factory=dict)
    # The credit lifecycle rules (service/detect/); hours and days are API time.
    depletion_horizon_h: float = Field(default=72.0, gt=0, le=_YEAR_H)
    # An account forecast to run out (or cross its low line) within this many seconds is
    # marked at risk, so the poller polls it on its own when that moment comes.
    risk_horizon_s: float = Field(default=3600.0, gt=0, le=_WEEK_S)
    expiring_horizons_days: list[Annotated[int, Field(ge=1, le=3650)]] = Field(
        default_factory=lambda: [14, 7, 3, 1], min_length=1, max_length=20
    )
    burn_days: int = Field(default=3, ge=1, le=30)
    cash_runway_days: Decimal = Field(default=Decimal(3), gt=0, le=3650)
    discount_cap_near_percent: Decimal = Field(default=Decimal(80), gt=0, lt=100)
    ladder_closing_h: float = Field(default=48.0, gt=0, le=_YEAR_H)
    stale_intervals: float = Field(default=3.0, gt=1, le=1000)
    reconcile_after_h: float = Field(default=24.0, ge=0, le=_YEAR_H)
    # Spend figures of a day may still grow this long after it ended (24-48 h for voucher
    # spend): reconciliation compares only days at least this old.
    reconcile_lag_h: float = Field(default=48.0, ge=0, le=720)
    reconcile_tolerance: Decimal = Field(default=Decimal("1.00"), ge=0)
    reconcile_tolerance_percent: Decimal = Field(default=Decimal(1), ge=0, le=100)
    # Issued/expired transactions older than this when first seen are recorded, not notified.
    event_window_h: float = Field(default=48.0, gt=0, le=_YEAR_H)

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
        if value is not None and not re.match(
            r"^(redis|rediss|unix|redis\+sentinel|rediss?\+cluster)://", value
        ):
            raise ValueError(
                "must start with redis://, rediss://, unix://, redis+sentinel://, "
                "redis+cluster:// or rediss+cluster://"
            )
        return value or None

    @model_validator(mode="before")
    @classmethod
    def _refuse_retired(cls, data: Any) -> Any:
        for path, instead in RETIRED.items():
            if _holds(data, path):
                # Not a ValueError: pydantic would name the section, not the retired key.
                raise SettingsError(f"{_setting_name(path)}: {instead}")
        return data

    @model_validator(mode="after")
    def _cluster_needs_shards(self) -> Self:
        # With one shard keys carry no hash tag, and the detector's transaction (states and
        # the alerts stream) would span slots: Redis Cluster refuses it (CROSSSLOT).
        if self.redis_url and "+cluster://" in self.redis_url and self.streams.shards < 2:
            # Not a ValueError: pydantic would name no field (the rule spans two).
            raise SettingsError(
                f"{_setting_name(('streams', 'shards'))}: at least 2 on a Redis Cluster "
                "(keys are hash-tagged by shard)"
            )
        return self

    @field_serializer("redis_url", when_used="json")
    def _redis_url_masked(self, value: str | None) -> str | None:
        return None if value is None else masked_url(value)

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
            sources.append(_BoundedYamlSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def require_api_access(self) -> None:
        """Raise SettingsError unless the real API can be polled (a token and its BC ids)."""
        if self.tiktok.connections:
            return  # each one was checked whole when it was read
        if not self.tiktok.access_token.get_secret_value():
            raise SettingsError(
                f"{ENV_PREFIX}TIKTOK__ACCESS_TOKEN: required to poll the API "
                "(or tiktok.connections for several tokens)"
            )
        if not self.tiktok.bc_ids:
            raise SettingsError(
                f"{ENV_PREFIX}TIKTOK__BC_IDS: at least one business center id, or {DISCOVER!r}"
            )

    def require_app(self, *, secret: bool) -> None:
        """Raise SettingsError unless the developer app (with ``secret``: its secret too) is set."""
        if not self.tiktok.app_id:
            raise SettingsError(f"{ENV_PREFIX}TIKTOK__APP_ID: required (the developer app's id)")
        if secret and not self.tiktok.app_secret.get_secret_value():
            raise SettingsError(
                f"{ENV_PREFIX}TIKTOK__APP_SECRET: required (the developer app's secret)"
            )


def masked_url(url: str) -> str:
    """The URL with its password (userinfo, or a ``password=`` query value) as ``***``:
    ``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else f"***@{hosts}"
    tail = re.sub(r"(?i)(password=)[^&#]*", r"\1***", tail)
    return f"{scheme}{sep}{netloc}{slash}{tail}"


class _BoundedYamlSource(YamlConfigSettingsSource):
    """The YAML file read within the size, depth and alias-expansion limits."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return load_yaml_file(Path(str(file_path)))


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


def _holds(data: Any, path: tuple[str, ...]) -> bool:
    """Whether the raw settings (nested dicts from the file and the environment) set ``path``."""
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


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
        try:
            check_json_depth(os.environ[name])
        except UnreadableConfig as error:
            raise SettingsError(f"{name}: {error}") from None


def _bad_json_variable() -> str:
    """The first variable whose JSON value does not parse (they are read as JSON)."""
    for name, value in sorted(os.environ.items()):
        if name.startswith(ENV_PREFIX) and value.lstrip()[:1] in ("[", "{"):
            try:
                json.loads(value)
            except ValueError as error:
                where = f" at char {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
                return f"{name}: not valid JSON{where}"
    return "a structured setting from the environment is not valid JSON"


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
    except UnreadableConfig as error:
        raise SettingsError(f"{ENV_PREFIX}CONFIG_FILE: {error}") from None
    except SourceError:  # pydantic-settings names the section only: find the variable
        raise SettingsError(_bad_json_variable()) from None
    except (ValueError, OSError) as error:  # an unreadable file
        raise SettingsError(f"configuration could not be read: {error}") from None
