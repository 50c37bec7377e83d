"""Notification settings: receivers, the route tree, quiet hours, retries and rate limits.

The ``notify`` section of the YAML file. Receivers are a list discriminated on ``type``
(console, webhook, slack, email), each with a unique ``name``; the route tree (Alertmanager's
model) names them. Everything is checked at load: a route naming an unknown receiver, a bad
glob, an unknown time zone or a template that does not compile is a SettingsError naming its
path, so ``creditwatch check-config`` catches it before the service starts. The value types
it is built from (durations, secrets, globs, names) are ``config/fields.py``'s; the retired
``notify.webhooks`` form is refused in ``config/settings.py`` (``RETIRED``).

Usage::

    notify = NotifySettings.model_validate(yaml.safe_load(text)["notify"])
    notify.receiver("ops-slack").type        # "slack"
    notify.routes()                          # implicit routes first, then the user's tree
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from config.fields import (
    Duration,
    GlobsByLabel,
    Name,
    Secret,
    Section,
    check_http_url,
    clock_time,
    known_zone,
    one_or_many,
)
from config.matchers import Matcher, parse_matcher

__all__ = [
    "BUILTIN_LABELS",
    "DEFAULT_INHIBIT_RULES",
    "TEMPLATE_NAMES",
    "WEEKDAYS",
    "AnyReceiver",
    "AppriseReceiverSettings",
    "ConsoleReceiverSettings",
    "DigestSchedule",
    "DiscordReceiverSettings",
    "EmailReceiverSettings",
    "InhibitRule",
    "MuteTimeInterval",
    "NotifySettings",
    "OpsgenieReceiverSettings",
    "PagerDutyReceiverSettings",
    "ReceiverSettings",
    "RetrySchedule",
    "Route",
    "SilenceDefaults",
    "SlackReceiverSettings",
    "TeamsReceiverSettings",
    "TelegramReceiverSettings",
    "TimeRange",
    "WebhookReceiverSettings",
    "Weekday",
]

# What a route or a silence can match on, besides the labels declared per account.
BUILTIN_LABELS = frozenset(
    {"kind", "severity", "status", "advertiser_id", "advertiser_name", "bc_id", "alert_id"}
)
# The templates a receiver may override (Jinja2 source, inline).
TEMPLATE_NAMES = ("subject", "text", "html", "slack_title", "slack_alert")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _every_day() -> list[Weekday]:
    return ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class RetrySchedule(Section):
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


class TimeRange(Section):
    """``start``-``end`` local time; ``22:00``-``07:00`` spans midnight."""

    start: time
    end: time

    _hh_mm = field_validator("start", "end", mode="before")(clock_time)


class MuteTimeInterval(Section):
    """Quiet hours: non-critical alerts routed through it wait until it ends."""

    name: Name
    time_zone: str = "UTC"
    weekdays: list[Weekday] = Field(default_factory=_every_day)
    times: list[TimeRange] = Field(default_factory=list)  # none: the whole day

    _zone = field_validator("time_zone")(known_zone)


class SilenceDefaults(Section):
    """Defaults of ``creditwatch silence add``."""

    duration: Duration = timedelta(hours=2)
    max_duration: Duration = timedelta(days=90)
    # Pending or active silences at once (POST /v1/silences beyond: 409); as many expired
    # records are kept, the oldest dropped first.
    max_active: int = Field(default=500, ge=1, le=100_000)


class DigestSchedule(Section):
    """When a receiver gets its digest: ``daily`` or ``weekly`` (on ``weekday``) at ``at``,
    local time in ``time_zone``."""

    schedule: Literal["daily", "weekly"] = "daily"
    at: time = time(8, 0)
    time_zone: str = "UTC"
    weekday: Weekday = "monday"

    _zone = field_validator("time_zone")(known_zone)
    _hh_mm = field_validator("at", mode="before")(clock_time)

    @field_validator("weekday", mode="before")
    @classmethod
    def _short_day(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            for day in WEEKDAYS:
                if len(text) >= 3 and day.startswith(text):
                    return day
        return value


class _ReceiverBase(Section):
    name: Name
    send_resolved: bool = True
    # Messages per second; a burst waits its turn rather than being dropped.
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    templates: dict[str, str] = Field(default_factory=dict)
    template_dir: Path | None = None
    # Gets what this receiver could not deliver after its last attempt.
    fallback: Name | None = None

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


def _whsec(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    if not raw.startswith("whsec_") or len(raw) < 6 + 16:
        raise ValueError("must be a whsec_ secret of at least 16 base64 characters")
    return value


def _secret_http_url(value: SecretStr) -> SecretStr:
    check_http_url(value.get_secret_value())
    return value


class _HttpReceiver(_ReceiverBase):
    """A receiver that sends each message as an HTTP request."""

    timeout_s: float = Field(default=15.0, gt=0, le=120)


class _HttpUrlReceiver(_HttpReceiver):
    """One that POSTs to an http(s) URL holding no secret of its own."""

    url: str

    _url = field_validator("url")(check_http_url)


class ConsoleReceiverSettings(_ReceiverBase):
    """One line per transition on standard output."""

    type: Literal["console"] = "console"


class WebhookReceiverSettings(_HttpUrlReceiver):
    """A Standard Webhooks endpoint: one signed POST per transition.

    ``secret``, or ``secrets`` while rotating: every delivery is signed with each of them (one
    ``v1,<signature>`` per secret in the ``webhook-signature`` header), so the endpoint may
    verify with the old or the new one while it changes over.
    """

    type: Literal["webhook"] = "webhook"
    secret: Secret | None = None
    secrets: list[Annotated[Secret, AfterValidator(_whsec)]] = Field(
        default_factory=list, max_length=10
    )

    @field_validator("secret")
    @classmethod
    def _one_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _whsec(value)

    @model_validator(mode="after")
    def _secret_or_secrets(self) -> WebhookReceiverSettings:
        if self.secret is None and not self.secrets:
            raise ValueError("secret (or secrets, while rotating) is required")
        if self.secret is not None and self.secrets:
            raise ValueError("give secret or secrets, not both")
        return self

    @property
    def signing_secrets(self) -> list[SecretStr]:
        return [self.secret] if self.secret is not None else list(self.secrets)


class _SecretUrlReceiver(_HttpReceiver):
    """One whose URL holds its secret (a webhook URL, an Apprise key)."""

    url: Secret

    _url = field_validator("url")(_secret_http_url)


class SlackReceiverSettings(_SecretUrlReceiver):
    """A Slack incoming webhook (the URL is the secret); Block Kit messages."""

    type: Literal["slack"] = "slack"
    rate_limit_per_s: float | None = Field(default=1.0, gt=0)  # Slack allows about 1/s
    digest: DigestSchedule | None = None


class EmailReceiverSettings(_ReceiverBase):
    """SMTP with STARTTLS, implicit TLS or (for a local relay) none; text + HTML parts."""

    type: Literal["email"] = "email"
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: Annotated[list[str], BeforeValidator(one_or_many)] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    digest: DigestSchedule | None = None

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


class PagerDutyReceiverSettings(_HttpUrlReceiver):
    """PagerDuty Events API v2: trigger on firing, resolve on resolved, by the alert id."""

    type: Literal["pagerduty"] = "pagerduty"
    routing_key: Secret
    # The EU service region uses https://events.eu.pagerduty.com/v2/enqueue.
    url: str = "https://events.pagerduty.com/v2/enqueue"


class OpsgenieReceiverSettings(_HttpUrlReceiver):
    """Opsgenie Alert API: create by alias on firing, close by alias on resolved."""

    type: Literal["opsgenie"] = "opsgenie"
    api_key: Secret
    # The EU instance is https://api.eu.opsgenie.com.
    url: str = "https://api.opsgenie.com"


class TeamsReceiverSettings(_SecretUrlReceiver):
    """Microsoft Teams through a Workflows webhook (the URL is the secret); Adaptive Cards."""

    type: Literal["teams"] = "teams"


class DiscordReceiverSettings(_SecretUrlReceiver):
    """A Discord channel webhook (the URL is the secret); one embed per alert."""

    type: Literal["discord"] = "discord"


class TelegramReceiverSettings(_HttpReceiver):
    """A Telegram bot's ``sendMessage`` to one chat, as HTML."""

    type: Literal["telegram"] = "telegram"
    bot_token: Secret
    chat_id: str = Field(pattern=r"^(-?\d+|@[A-Za-z0-9_]{5,32})$")
    api_url: str = "https://api.telegram.org"
    # Telegram allows about 1 message/s per chat (20/min in groups).
    rate_limit_per_s: float | None = Field(default=1.0, gt=0)

    _url = field_validator("api_url")(check_http_url)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        # It goes into the URL path: anything but BotFather's shape is a mistake.
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", value.get_secret_value()):
            raise ValueError("must be a bot token as BotFather gives it (123456:ABC...)")
        return value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class AppriseReceiverSettings(_SecretUrlReceiver):
    """An Apprise API server's ``/notify/{key}``: it fans out to Lark, DingTalk, WeCom, ..."""

    type: Literal["apprise"] = "apprise"
    tag: str | None = None  # only the Apprise URLs with this tag (Apprise's own syntax)
    timeout_s: float = Field(default=30.0, gt=0, le=120)  # it waits for every service


AnyReceiver = (
    ConsoleReceiverSettings
    | WebhookReceiverSettings
    | SlackReceiverSettings
    | EmailReceiverSettings
    | PagerDutyReceiverSettings
    | OpsgenieReceiverSettings
    | TeamsReceiverSettings
    | DiscordReceiverSettings
    | TelegramReceiverSettings
    | AppriseReceiverSettings
)
ReceiverSettings = Annotated[AnyReceiver, Field(discriminator="type")]


class Route(Section):
    """A node of the route tree. Unset fields are inherited from the parent.

    ``match`` maps a label (kind, severity, status, advertiser_id, bc_id, advertiser_name,
    alert_id, or one declared in ``account_labels``) to a glob or a list of globs; every label
    must match one of its globs. Children are tried in order; the first that matches takes
    the alert unless it says ``continue: true``. A node none of whose children match takes the
    alert itself.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    receiver: str | None = None
    match: GlobsByLabel = Field(default_factory=dict)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] | None = None
    routes: list[Route] = Field(default_factory=list)


class InhibitRule(Section):
    """Alertmanager's inhibit rule: while a source alert fires, matching targets are muted.

    A target (an alert matching the target side) is inhibited while some firing alert matches
    the source side and has the same value (a missing label is the empty string) for every
    label in ``equal``. A side is ``*_match`` (``label: glob`` or a list of globs, as in
    routes) and/or ``*_matchers`` (Alertmanager's matcher strings, ``config/matchers.py``);
    all of a side's conditions must hold. An alert matching both sides never inhibits one that
    also matches both (Alertmanager's rule), so no alert inhibits itself.
    """

    source_match: GlobsByLabel = Field(default_factory=dict)
    source_matchers: list[Annotated[Matcher, BeforeValidator(parse_matcher)]] = Field(
        default_factory=list
    )
    target_match: GlobsByLabel = Field(default_factory=dict)
    target_matchers: list[Annotated[Matcher, BeforeValidator(parse_matcher)]] = Field(
        default_factory=list
    )
    equal: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both_sides(self) -> InhibitRule:
        for side in ("source", "target"):
            if not getattr(self, f"{side}_match") and not getattr(self, f"{side}_matchers"):
                raise ValueError(f"{side}_match or {side}_matchers is required")
        return self

    def label_names(self, side: Literal["source", "target"]) -> list[str]:
        globs: dict[str, list[str]] = getattr(self, f"{side}_match")
        matchers: list[Matcher] = getattr(self, f"{side}_matchers")
        return [*globs, *(m.name for m in matchers)]


# Out of credit makes "credit is low" and "credit runs out soon" noise for the same account.
DEFAULT_INHIBIT_RULES = (
    InhibitRule(
        source_match={"kind": ["credit.exhausted"]},
        target_match={"kind": ["credit.low", "credit.depletion_forecast"]},
        equal=["advertiser_id", "bc_id"],
    ),
)


class NotifySettings(Section):
    """Where alert transitions go, when, and how hard we try."""

    console: bool = True  # an implicit ``console`` receiver that gets every alert at once
    receivers: list[ReceiverSettings] = Field(default_factory=list)
    route: Route | None = None
    account_labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    mute_time_intervals: list[MuteTimeInterval] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    # The built-in rules (DEFAULT_INHIBIT_RULES) apply besides the user's unless switched off.
    default_inhibit_rules: bool = True
    silences: SilenceDefaults = SilenceDefaults()
    retry: RetrySchedule = RetrySchedule()
    group_by: list[str] = Field(default_factory=lambda: ["kind"])
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=24)
    promotions_url: str = "https://ads.tiktok.com/i18n/account/promotion?aadvid={advertiser_id}"
    # Where the status page is reachable from outside (``https://credits.example.com``):
    # incident tools and digests link to its ``/accounts/{advertiser_id}`` pages.
    external_url: str | None = None
    history_days: int = Field(default=30, ge=1, le=3650)
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    # How long a claimed delivery stays with one sender before another may retry it: longer
    # than any single attempt (receiver timeouts), short enough that a dead replica's
    # in-flight deliveries do not wait long.
    delivery_lease: Duration = timedelta(minutes=1)
    # Webhook subscriptions made through the API must be public https endpoints (SSRF);
    # labs and tests that post to localhost or a private network switch this on.
    allow_private_urls: bool = False
    # Webhook subscriptions made through the API (POST /v1/subscriptions beyond: 409).
    max_subscriptions: int = Field(default=100, ge=0, le=10_000)

    @field_validator("external_url")
    @classmethod
    def _external(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value).rstrip("/")

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
        _check_fallbacks(self.receivers, set(names))
        for index, rule in enumerate(self.inhibit_rules):
            where = f"inhibit_rules.{index}"
            _check_labels(f"{where}.source", rule.label_names("source"), labels)
            _check_labels(f"{where}.target", rule.label_names("target"), labels)
            _check_labels(f"{where}.equal", rule.equal, labels)
        return self

    def all_inhibit_rules(self) -> list[InhibitRule]:
        """The built-in rules (unless ``default_inhibit_rules`` is off), then the user's."""
        builtin = list(DEFAULT_INHIBIT_RULES) if self.default_inhibit_rules else []
        return builtin + list(self.inhibit_rules)

    def all_receivers(self) -> list[AnyReceiver]:
        """The declared receivers plus the implicit console."""
        declared: list[AnyReceiver] = list(self.receivers)
        if self.console and "console" not in {r.name for r in declared}:
            declared.append(ConsoleReceiverSettings(name="console"))
        return declared

    def receiver(self, name: str) -> AnyReceiver:
        for receiver in self.all_receivers():
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def routes(self) -> list[Route]:
        """Independent route trees: each one that matches adds its receivers.

        The implicit console sends at once (no grouping), as it always did; the user's tree
        follows.
        """
        trees: list[Route] = []
        if self.console and not any(r.name == "console" for r in self.receivers):
            trees.append(
                Route(
                    receiver="console",
                    group_by=["..."],
                    group_wait=timedelta(0),
                    group_interval=timedelta(0),
                )
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


def _check_fallbacks(receivers: list[AnyReceiver], names: set[str]) -> None:
    """Every ``fallback`` names a receiver, and no chain of fallbacks comes back on itself."""
    fallbacks = {r.name: r.fallback for r in receivers if r.fallback is not None}
    for index, receiver in enumerate(receivers):
        if receiver.fallback is None:
            continue
        where = f"receivers.{index}.fallback"
        if receiver.fallback not in names:
            raise ValueError(f"{where}: unknown receiver {receiver.fallback!r}")
        chain = [receiver.name]
        while (step := fallbacks.get(chain[-1])) is not None:
            if step in chain:
                raise ValueError(f"{where}: fallbacks go round: {' -> '.join([*chain, step])}")
            chain.append(step)


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
