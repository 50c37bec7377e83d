"""Webhook subscriptions made through the API: kept in Redis, delivered to like YAML webhooks.

A subscription is a Standard Webhooks endpoint and the kinds it wants (globs), as a ``webhook``
receiver with a route matching those kinds declares it, created at run time by
``/v1/subscriptions``. Its ``whsec_`` secret is generated here and returned once, on creation;
it stays in Redis because the sender signs with it, and no read ever returns it again. The
notifier routes each transition to the subscriptions whose kinds match (at once, one delivery
per transition, like a route with ``group_by: ["..."]`` and no waits), and the sender resolves
their receivers here per delivery, so every replica picks up a new or deleted subscription
without a restart. The URL is checked again before each attempt: a host that resolved to a
public address when the subscription was made may not resolve to a private one later (DNS
rebinding). ``create`` with a ``limit`` refuses one more than that many
(``TooManySubscriptions``), checked and written in one step (a Lua script), so concurrent
requests cannot overshoot it.

Rotating a secret (``rotate``) makes a new one and keeps the old one for a grace period:
until it ends, every delivery is signed with both, so the subscriber can switch over with no
failed verification. An old secret is dropped on read once its grace has passed (compared with
the sender's clock), and from the record at the next rotation.

Usage::

    store = Subscriptions(redis, settings.streams)
    subscription, secret = await store.create(
        url, kinds=["credit.*"], description="", now=now, limit=settings.notify.max_subscriptions
    )
    rotated = await store.rotate(subscription.id, grace=timedelta(hours=24), now=now)
    targets = await store.targets(labels, settings.notify)      # for the notifier
    receiver = await store.receiver(subscription.id, settings.notify, http)   # for the sender
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from config.notify import NotifySettings, WebhookReceiverSettings
from config.settings import StreamSettings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.receivers import Outcome
from service.deliver.routing import RouteTarget, matches
from service.deliver.url_guard import UnsafeUrl, check_subscriber_url
from service.deliver.webhook import WebhookReceiver
from service.optimistic import Decision, commit
from service.redis_records import read_record

__all__ = [
    "REFUSED",
    "GuardedWebhook",
    "PreviousSecret",
    "Rotated",
    "Subscription",
    "SubscriptionKinds",
    "Subscriptions",
    "TooManySubscriptions",
    "is_subscription_id",
    "new_secret",
]

_ID = re.compile(r"^sub_[0-9a-f]{16}$")
# Old secrets kept at once: rotating again and again within one grace keeps only the newest.
MAX_PREVIOUS = 4

# KEYS[1] the hash; ARGV: limit, id, JSON. 1 if written, 0 if the hash is full.
_CREATE_BOUNDED = """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
"""


class TooManySubscriptions(Exception):
    """As many subscriptions as allowed exist already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} subscriptions")
        self.limit = limit


# How a delivery the URL guard stopped begins its detail.
REFUSED = "subscriber URL refused"


def is_subscription_id(name: str) -> bool:
    return bool(_ID.fullmatch(name))


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Subscription(BaseModel):
    """A subscription as the API shows it: everything but its secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    url: str
    kinds: list[str]
    description: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class PreviousSecret(BaseModel):
    """A rotated-out secret, still signed with until ``expires_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret: str
    expires_at: AwareDatetime


class _Stored(Subscription):
    secret: str
    previous: list[PreviousSecret] = []

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret first, then the old ones whose grace has not ended."""
        return [self.secret, *(p.secret for p in self.previous if p.expires_at > now)]


class Rotated(BaseModel):
    """The outcome of a rotation: the new secret (shown this once) and when the old one ends."""

    subscription: Subscription
    secret: str
    previous_expires_at: AwareDatetime | None


class SubscriptionKinds(Mapping[str, str]):
    """The configured receivers' kinds, and ``webhook`` for every subscription.

    The group store makes one delivery per transition for webhooks (so a subscriber can
    drop duplicates by ``webhook-id``); subscriptions are webhooks too.
    """

    def __init__(self, configured: Mapping[str, str]) -> None:
        self._configured = dict(configured)

    def __getitem__(self, name: str) -> str:
        if name in self._configured:
            return self._configured[name]
        if is_subscription_id(name):
            return "webhook"
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._configured)

    def __len__(self) -> int:
        return len(self._configured)


@dataclass(eq=False, repr=False)
class GuardedWebhook(WebhookReceiver):
    """A subscription's webhook receiver that refuses, at each attempt, a non-public URL.

    The address is checked again where it is connected to (``url_guard.guarded_client``):
    this first check gives a clear reason, that one closes the rebinding window."""

    _: KW_ONLY
    allow_private: bool

    async def attempt(self, delivery: Delivery) -> Outcome:
        try:
            await check_subscriber_url(self.settings.url, allow_private=self.allow_private)
        except UnsafeUrl as error:
            return Outcome.failed(f"{REFUSED}: {error}")
        return await super().attempt(delivery)


class Subscriptions:
    """The subscriptions hash, ``<prefix>:subscriptions`` (id -> JSON, secret included)."""

    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._key = streams.keyspace.subscriptions()
        self._create_bounded = redis.register_script(_CREATE_BOUNDED)

    async def create(
        self,
        url: str,
        *,
        kinds: list[str],
        description: str,
        now: datetime,
        limit: int | None = None,
    ) -> tuple[Subscription, str]:
        """A new subscription and its secret (the only time the secret is returned); with
        ``limit``, ``TooManySubscriptions`` if that many exist already."""
        secret = new_secret()
        stored = _Stored(
            id="sub_" + secrets.token_hex(8),
            url=url,
            kinds=kinds,
            description=description,
            created_at=now,
            updated_at=now,
            secret=secret,
        )
        if limit is None:
            await self._redis.hset(self._key, stored.id, stored.model_dump_json())
        elif not await self._create_bounded(
            keys=[self._key], args=[limit, stored.id, stored.model_dump_json()]
        ):
            raise TooManySubscriptions(limit)
        return _public(stored), secret

    async def update(
        self, subscription_id: str, *, url: str, kinds: list[str], description: str, now: datetime
    ) -> Subscription | None:
        """Replace URL, kinds and description; the secret stays. None if there is no such id."""
        stored = await self._load(subscription_id)
        if stored is None:
            return None
        changed = stored.model_copy(
            update={"url": url, "kinds": kinds, "description": description, "updated_at": now}
        )
        await self._redis.hset(self._key, subscription_id, changed.model_dump_json())
        return _public(changed)

    async def rotate(
        self, subscription_id: str, *, grace: timedelta, now: datetime
    ) -> Rotated | None:
        """A new secret; the current one is kept ``grace`` longer (none: dropped at once)."""
        key = self._key

        async def decide(pipe: Pipeline) -> Decision[Rotated | None]:
            stored = read_record(_Stored, await pipe.hget(key, subscription_id))
            if stored is None:
                return Decision(None)
            kept = [p for p in stored.previous if p.expires_at > now]
            expires_at = now + grace if grace > timedelta(0) else None
            if expires_at is not None:
                kept.insert(0, PreviousSecret(secret=stored.secret, expires_at=expires_at))
            secret = new_secret()
            changed = stored.model_copy(
                update={"secret": secret, "previous": kept[:MAX_PREVIOUS], "updated_at": now}
            )

            async def writes(pipe: Pipeline) -> None:
                pipe.hset(key, subscription_id, changed.model_dump_json())

            rotated = Rotated(
                subscription=_public(changed), secret=secret, previous_expires_at=expires_at
            )
            return Decision(rotated, writes)

        # Watched: a concurrent update must not lose the new secret.
        return await commit(self._redis, [key], decide)

    async def delete(self, subscription_id: str) -> bool:
        return bool(await self._redis.hdel(self._key, subscription_id))

    async def get(self, subscription_id: str) -> Subscription | None:
        stored = await self._load(subscription_id)
        return _public(stored) if stored else None

    async def all(self) -> list[Subscription]:
        return [_public(s) for s in await self._all()]

    async def targets(self, labels: Mapping[str, str], notify: NotifySettings) -> list[RouteTarget]:
        """Where a transition with these labels goes among the subscriptions: at once, one
        group per alert (as a route with ``group_by: ["..."]`` and no waits)."""
        return (await self.router(notify))(labels)

    async def router(self, notify: NotifySettings) -> TargetsOf:
        """``targets`` over the subscriptions as they are now, read once (a notifier's batch)."""
        stored = await self._all()

        def targets(labels: Mapping[str, str]) -> list[RouteTarget]:
            return [
                RouteTarget(
                    receiver=s.id,
                    # Stable per subscription: the group of an alert must not move when others
                    # are added or deleted, or its resolved transition would miss its group.
                    path="subscription",
                    group_by=("...",),
                    group_wait=timedelta(0),
                    group_interval=timedelta(0),
                    repeat_interval=notify.repeat_interval,
                    mute_time_intervals=(),
                )
                for s in stored
                if matches({"kind": s.kinds}, dict(labels))
            ]

        return targets

    async def receiver(
        self,
        subscription_id: str,
        notify: NotifySettings,
        http: httpx.AsyncClient,
        clock: Clock = utc_now,
    ) -> GuardedWebhook | None:
        """The webhook receiver of a subscription (the YAML webhooks' code), or None."""
        stored = await self._load(subscription_id) if is_subscription_id(subscription_id) else None
        if stored is None:
            return None
        settings = WebhookReceiverSettings(
            name=stored.id,
            url=stored.url,
            secrets=[SecretStr(s) for s in stored.signing_secrets(clock())],
        )
        return GuardedWebhook(settings, http, clock, allow_private=notify.allow_private_urls)

    async def _load(self, subscription_id: str) -> _Stored | None:
        # A hand-edited entry that no longer parses: as if it were not there.
        return read_record(_Stored, await self._redis.hget(self._key, subscription_id))

    async def _all(self) -> list[_Stored]:
        rows = await self._redis.hgetall(self._key)
        out = [s for s in (read_record(_Stored, raw) for raw in rows.values()) if s is not None]
        return sorted(out, key=lambda s: (s.created_at, s.id))


# A transition's labels -> the subscriptions it goes to.
TargetsOf = Callable[[Mapping[str, str]], list[RouteTarget]]


def _public(stored: _Stored) -> Subscription:
    return Subscription.model_validate(stored.model_dump(exclude={"secret", "previous"}))
