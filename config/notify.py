"""Notification settings: receivers, the route tree, quiet hours, retries and rate limits.

The ``notify`` section of the YAML file. Receivers are a list discriminated on ``type``
(console, webhook, slack, email), each with a unique ``name``; the route tree (Alertmanager's
model) names them. Everything is checked at load: a route naming an unknown receiver, a bad
glob, an unknown time zone or a template that does not compile is a SettingsError naming its
path, so ``creditwatch check-config`` catches it before the service starts.

Usage::

    notify = NotifySettings.model_validate(yaml.safe_load(text)["notify"])
    notify.receiver("ops-slack").type        # "slack"
    notify.routes()                          # implicit routes first, then the user's tree
"""

from __future__ import annotations

import os
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = [
    "BUILTIN_LABELS",
    "TEMPLATE_NAMES",
    "WEEKDAYS",
    "AnyReceiver",
    "ConsoleReceiverSettings",
    "Duration",
    "EmailReceiverSettings",
    "MuteTimeInterval",
    "NotifySettings",
    "ReceiverSettings",
    "RetrySchedule",
    "Route",
    "SilenceDefaults",
    "SlackReceiverSettings",
    "TimeRange",
    "WebhookReceiverSettings",
    "WebhookSubscriber",
    "Weekday",
    "check_glob",
    "format_duration",
    "parse_duration",
]

# What a route or a silence can match on, besides the labels declared per account.
BUILTIN_LABELS = frozenset(
    {"kind", "severity", "status", "advertiser_id", "advertiser_name", "bc_id", "alert_id"}
)
# The templates a receiver may override (Jinja2 source, inline).
TEMPLATE_NAMES = ("subject", "text", "html", "slack_title", "slack_alert")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """``90``, ``"5s"``, ``"30m"``, ``"1h30m"``, ``"3d"`` -> timedelta; anything else unchanged."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(float(n) * _UNITS_S[u] for n, u in parts))
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d)")
    return value


def format_duration(value: timedelta) -> str:
    """The short form ``parse_duration`` reads: 5400 s -> ``1h30m``."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    out = ""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_S[unit]
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{int(count)}{unit}"
    if seconds:
        out += f"{round(seconds * 1000)}ms"
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def check_glob(pattern: str) -> str:
    """A glob as ``fnmatch`` reads it; unbalanced brackets and empty patterns are refused."""
    if not pattern:
        raise ValueError("empty glob")
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise ValueError(f"bad glob {pattern!r}: nested '['")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad glob {pattern!r}: '[' without ']'")
    return pattern


def _secret_from_env(value: Any) -> Any:
    """``${NAME}`` reads the secret from environment variable NAME, so YAML can be shared."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str) and (found := re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", raw)):
        name = found.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    return value


Secret = Annotated[SecretStr, BeforeValidator(_secret_from_env)]


def _every_day() -> list[Weekday]:
    return ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySchedule(_Section):
    """Waits between attempts of one delivery; its length + 1 is the number of attempts.

    The default follows Standard Webhooks (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, ...) and gives
    up after about 2.8 days. Each wait is spread by ``jitter`` (0.2 = +-20 %) so that
    deliveries that failed together do not all come back at once.
    """

    delays: list[Duration] = Field(
        default_factory=lambda: [
            timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, *(36000,) * 6)
        ],
        min_length=0,
        max_length=100,
    )
    jitter: float = Field(default=0.2, ge=0, lt=1)
    max_retry_after: Duration = timedelta(hours=24)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1


class TimeRange(_Section):
    """``start``-``end`` local time; ``22:00``-``07:00`` spans midnight."""

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
            hours, minutes = value.strip().split(":")
            if hours == "24" and minutes == "00":
                return time(23, 59, 59, 999999)
            return time(int(hours), int(minutes))
        return value


class MuteTimeInterval(_Section):
    """Quiet hours: non-critical alerts routed through it wait until it ends."""

    name: str = Field(pattern=_NAME)
    time_zone: str = "UTC"
    weekdays: list[Weekday] = Field(default_factory=_every_day)
    times: list[TimeRange] = Field(default_factory=list)  # none: the whole day

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SilenceDefaults(_Section):
    """Defaults of ``creditwatch silence add``."""

    duration: Duration = timedelta(hours=2)
    max_duration: Duration = timedelta(days=90)


class _ReceiverBase(_Section):
    name: str = Field(pattern=_NAME)
    send_resolved: bool = True
    # Messages per second; a burst waits its turn rather than being dropped.
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    templates: dict[str, str] = Field(default_factory=dict)
    template_dir: Path | None = None

    @field_validator("templates")
    @classmethod
    def _templates_compile(cls, value: dict[str, str]) -> dict[str, str]:
        environment = jinja2.Environment(autoescape=True)  # only parsed here, never rendered
        for name, source in value.items():
            if name not in TEMPLATE_NAMES:
                raise ValueError(f"unknown template {name!r}: one of {', '.join(TEMPLATE_NAMES)}")
            try:
                environment.parse(source)
            except jinja2.TemplateSyntaxError as error:
                where = f"template {name!r}: {error.message} (line {error.lineno})"
                raise ValueError(where) from None
        return value

    @field_validator("template_dir")
    @classmethod
    def _dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"no such directory: {value}")
        return value


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s) URL")
    return value


def _whsec(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    if not raw.startswith("whsec_") or len(raw) < 6 + 16:
        raise ValueError("must be a whsec_ secret of at least 16 base64 characters")
    return value


class ConsoleReceiverSettings(_ReceiverBase):
    """One line per transition on standard output."""

    type: Literal["console"] = "console"


class WebhookReceiverSettings(_ReceiverBase):
    """A Standard Webhooks endpoint: one signed POST per transition."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: Secret
    timeout_s: float = Field(default=15.0, gt=0, le=120)

    _url = field_validator("url")(_http_url)
    _secret = field_validator("secret")(_whsec)


class SlackReceiverSettings(_ReceiverBase):
    """A Slack incoming webhook (the URL is the secret); Block Kit messages."""

    type: Literal["slack"] = "slack"
    url: Secret
    timeout_s: float = Field(default=15.0, gt=0, le=120)
    rate_limit_per_s: float | None = Field(default=1.0, gt=0)  # Slack allows about 1/s

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: SecretStr) -> SecretStr:
        _http_url(value.get_secret_value())
        return value


class EmailReceiverSettings(_ReceiverBase):
    """SMTP with STARTTLS, implicit TLS or (for a local relay) none; text + HTML parts."""

    type: Literal["email"] = "email"
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: Annotated[list[str], BeforeValidator(_as_list)] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"not an email address: {address!r}")
        return value

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]


AnyReceiver = (
    ConsoleReceiverSettings
    | WebhookReceiverSettings
    | SlackReceiverSettings
    | EmailReceiverSettings
)
ReceiverSettings = Annotated[AnyReceiver, Field(discriminator="type")]


class WebhookSubscriber(_Section):
    """The earlier ``notify.webhooks`` form: an endpoint plus the kinds (globs) it wants.

    Still accepted: each becomes a webhook receiver with a route of its own.
    """

    name: str = Field(pattern=_NAME)
    url: str
    secret: Secret
    kinds: list[str] = Field(default_factory=lambda: ["*"])

    _url = field_validator("url")(_http_url)
    _secret = field_validator("secret")(_whsec)

    @field_validator("kinds")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [check_glob(k) for k in value]


class Route(_Section):
    """A node of the route tree. Unset fields are inherited from the parent.

    ``match`` maps a label (kind, severity, status, advertiser_id, bc_id, advertiser_name,
    alert_id, or one declared in ``account_labels``) to a glob or a list of globs; every label
    must match one of its globs. Children are tried in order; the first that matches takes
    the alert unless it says ``continue: true``. A node none of whose children match takes the
    alert itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    match: dict[str, Annotated[list[str], BeforeValidator(_as_list)]] = Field(default_factory=dict)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] | None = None
    routes: list[Route] = Field(default_factory=list)

    @field_validator("match")
    @classmethod
    def _globs(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for globs in value.values():
            for glob in globs:
                check_glob(glob)
        return value


class NotifySettings(_Section):
    """Where alert transitions go, when, and how hard we try."""

    console: bool = True  # an implicit ``console`` receiver that gets every alert at once
    webhooks: list[WebhookSubscriber] = Field(default_factory=list)  # the earlier form
    receivers: list[ReceiverSettings] = Field(default_factory=list)
    route: Route | None = None
    account_labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    mute_time_intervals: list[MuteTimeInterval] = Field(default_factory=list)
    silences: SilenceDefaults = SilenceDefaults()
    retry: RetrySchedule = RetrySchedule()
    group_by: list[str] = Field(default_factory=lambda: ["kind"])
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=24)
    promotions_url: str = "https://ads.tiktok.com/i18n/account/promotion?aadvid={advertiser_id}"
    history_days: int = Field(default=30, ge=1, le=3650)
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    # How long a claimed delivery stays with one sender before another may retry it: longer
    # than any single attempt (receiver timeouts), short enough that a dead replica's
    # in-flight deliveries do not wait long.
    delivery_lease: Duration = timedelta(minutes=1)
    # Webhook subscriptions made through the API must be public https endpoints (SSRF);
    # labs and tests that post to localhost or a private network switch this on.
    allow_private_urls: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> NotifySettings:
        names = [r.name for r in self.all_receivers()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique: {', '.join(duplicates)}")
        intervals = [m.name for m in self.mute_time_intervals]
        if len(intervals) != len(set(intervals)):
            raise ValueError("mute_time_intervals names must be unique")
        declared = {k for v in self.account_labels.values() for k in v}
        if declared & BUILTIN_LABELS:
            taken = ", ".join(sorted(declared & BUILTIN_LABELS))
            raise ValueError(f"account_labels: {taken} is built in and cannot be declared")
        labels = BUILTIN_LABELS | declared
        _check_labels("group_by", self.group_by, labels | {"..."})
        if self.route is not None:
            _check_route(self.route, "route", set(names), set(intervals), labels)
        return self

    def all_receivers(self) -> list[AnyReceiver]:
        """The declared receivers plus the implicit console and the earlier webhooks."""
        declared: list[AnyReceiver] = list(self.receivers)
        if self.console and "console" not in {r.name for r in declared}:
            declared.append(ConsoleReceiverSettings(name="console"))
        declared.extend(
            WebhookReceiverSettings(name=w.name, url=w.url, secret=w.secret) for w in self.webhooks
        )
        return declared

    def receiver(self, name: str) -> AnyReceiver:
        for receiver in self.all_receivers():
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def routes(self) -> list[Route]:
        """Independent route trees: each one that matches adds its receivers.

        The implicit console and the earlier ``webhooks`` send at once (no grouping), as they
        always did; the user's tree follows.
        """
        at_once = {"group_wait": timedelta(0), "group_interval": timedelta(0)}
        trees: list[Route] = []
        if self.console and not any(r.name == "console" for r in self.receivers):
            trees.append(Route(receiver="console", group_by=["..."], **at_once))
        trees.extend(
            Route(receiver=w.name, match={"kind": w.kinds}, group_by=["..."], **at_once)
            for w in self.webhooks
        )
        if self.route is not None:
            trees.append(self.route)
        return trees

    def mute_interval(self, name: str) -> MuteTimeInterval:
        for interval in self.mute_time_intervals:
            if interval.name == name:
                return interval
        raise KeyError(name)


def _check_labels(where: str, names: list[str], known: set[str] | frozenset[str]) -> None:
    for name in names:
        if name not in known:
            raise ValueError(f"{where}: unknown label {name!r} (known: {', '.join(sorted(known))})")


def _check_route(
    route: Route, where: str, receivers: set[str], intervals: set[str], labels: frozenset[str]
) -> None:
    if route.receiver is not None and route.receiver not in receivers:
        known = ", ".join(sorted(receivers)) or "none declared"
        raise ValueError(f"{where}.receiver: unknown receiver {route.receiver!r} (known: {known})")
    _check_labels(f"{where}.match", list(route.match), labels)
    if route.group_by is not None:
        _check_labels(f"{where}.group_by", route.group_by, labels | {"..."})
    for name in route.mute_time_intervals or []:
        if name not in intervals:
            raise ValueError(f"{where}.mute_time_intervals: unknown interval {name!r}")
    for index, child in enumerate(route.routes):
        _check_route(child, f"{where}.routes.{index}", receivers, intervals, labels)
