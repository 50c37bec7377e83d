"""``/v1/subscriptions``: CRUD on webhook subscribers, and a signed test event.

Creating a subscription returns its generated ``whsec_`` secret, once; no other answer ever
carries it. A subscriber URL must be https and public (no loopback, link-local or private
addresses) unless ``notify.allow_private_urls`` is on; a refused URL is a 422 naming ``url``.
``POST /v1/subscriptions/{id}/test`` sends one signed ``ops.test_event`` through the same
webhook receiver the notifiers use, at most once per ``TEST_EVERY_S`` per subscription (429
with ``Retry-After`` otherwise). It reports delivered or not and a coarse reason, never the
endpoint's status or body: the route must not work as a probe of other people's hosts.
``POST /v1/subscriptions/{id}/rotate-secret`` returns a new secret, once, and keeps signing with
the old one too for ``grace`` (24 h unless the body says otherwise; at most 30 days).

Usage::

    app.include_router(subscription_router(redis, settings, http), prefix="/v1")
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio import Redis

from config.fields import Duration
from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.deliveries import Delivery
from service.deliver.receivers import Outcome
from service.deliver.subscriptions import REFUSED, Subscription, Subscriptions, TooManySubscriptions
from service.deliver.url_guard import UnsafeUrl, check_subscriber_url, guarded_client
from service.http.errors import conflict, found, invalid, not_found
from service.http.glob_checks import check_globs
from workers.contract.alerts import AlertTransition

__all__ = [
    "CreatedSubscription",
    "ProbeResult",
    "RotateRequest",
    "RotatedSubscription",
    "SubscriptionRequest",
    "sample_event",
    "subscription_router",
]

_ID = Path(pattern=r"^sub_[0-9a-f]{16}$")
_MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "no such subscription"}}
TEST_KIND = "ops.test_event"
TEST_EVERY_S = 10
_TOO_SOON: dict[int | str, dict[str, Any]] = {
    429: {"description": "a test event was sent less than 10 s ago; see Retry-After"}
}


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    kinds: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=50)
    description: str = Field(default="", max_length=500)

    @field_validator("kinds")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        check_globs(value, longest=128, what="a kind glob")
        return value


class CreatedSubscription(Subscription):
    """The new subscription with its signing secret: store it now, it is not shown again."""

    secret: str


class RotateRequest(BaseModel):
    """How long the old secret is still signed with (``"24h"``, ``"30m"``, seconds; 0: not)."""

    model_config = ConfigDict(extra="forbid")

    grace: Duration = Field(default=timedelta(hours=24), ge=timedelta(0), le=timedelta(days=30))


class RotatedSubscription(CreatedSubscription):
    """The new secret, shown this once; the old one signs too until ``previous_expires_at``."""

    previous_expires_at: datetime | None


ProbeReason = Literal["accepted", "refused", "rejected", "unreachable"]


class ProbeResult(BaseModel):
    """Whether the endpoint took the test event (a 2xx), and why not in one coarse word:
    ``refused`` (not a public https address), ``rejected`` (it answered, but not 2xx) or
    ``unreachable`` (no connection or no answer in time). The delivery log has no more."""

    result: Literal["delivered", "not_delivered"]
    reason: ProbeReason
    webhook_id: str


def _reason(outcome: Outcome) -> ProbeReason:
    if outcome.result == "delivered":
        return "accepted"
    if outcome.detail.startswith(REFUSED):
        return "refused"
    return "rejected" if outcome.status_code is not None else "unreachable"


def sample_event(subscription_id: str) -> AlertTransition:
    """A firing ``ops.test_event`` about no account, unique per call."""
    now = utc_now()
    return AlertTransition(
        alert_id=f"al_test_{secrets.token_hex(8)}",
        kind=TEST_KIND,
        status="firing",
        severity="info",
        advertiser_id="",
        advertiser_name="",
        bc_id="",
        currency="XXX",  # ISO 4217 for "no currency": this event is about no account
        summary=f"Test event for subscription {subscription_id} from creditwatch.",
        values={},
        starts_at=now,
        observed_at=now,
    )


async def _checked(request: SubscriptionRequest, *, allow_private: bool) -> SubscriptionRequest:
    try:
        await check_subscriber_url(request.url, allow_private=allow_private)
    except UnsafeUrl as error:
        raise invalid(("body", "url"), str(error)) from None
    return request


async def _once_per_interval(redis: Redis, key: str) -> None:
    """A 429 with Retry-After unless the last test event of ``key`` is TEST_EVERY_S old."""
    if await redis.set(key, b"1", nx=True, ex=TEST_EVERY_S):
        return
    wait_ms = await redis.pttl(key)
    raise HTTPException(
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"one test event per {TEST_EVERY_S} s per subscription",
        headers={"Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
    )


def subscription_router(
    redis: Redis, settings: Settings, http: httpx.AsyncClient | None
) -> APIRouter:
    router = APIRouter()
    store = Subscriptions(redis, settings.streams)
    notify = settings.notify

    @router.get("/subscriptions", tags=["subscriptions"])
    async def list_subscriptions() -> list[Subscription]:
        """Webhook subscribers made through the API (their secrets are never shown)."""
        return await store.all()

    @router.post(
        "/subscriptions",
        tags=["subscriptions"],
        status_code=201,
        responses={409: {"description": "as many subscriptions as notify.max_subscriptions"}},
    )
    async def create_subscription(request: SubscriptionRequest) -> CreatedSubscription:
        """Subscribe an endpoint; the answer carries its ``whsec_`` secret, this once."""
        request = await _checked(request, allow_private=notify.allow_private_urls)
        try:
            created, secret = await store.create(
                request.url,
                kinds=request.kinds,
                description=request.description,
                now=utc_now(),
                limit=notify.max_subscriptions,
            )
        except TooManySubscriptions as error:
            raise conflict(f"{error} (notify.max_subscriptions): delete one first") from None
        return CreatedSubscription(**created.model_dump(), secret=secret)

    @router.get("/subscriptions/{subscription_id}", tags=["subscriptions"], responses=_MISSING)
    async def get_subscription(subscription_id: str = _ID) -> Subscription:
        return found(await store.get(subscription_id), "subscription")

    @router.put("/subscriptions/{subscription_id}", tags=["subscriptions"], responses=_MISSING)
    async def put_subscription(
        request: SubscriptionRequest, subscription_id: str = _ID
    ) -> Subscription:
        """Change URL, kinds or description; the secret stays."""
        request = await _checked(request, allow_private=notify.allow_private_urls)
        updated = await store.update(
            subscription_id,
            url=request.url,
            kinds=request.kinds,
            description=request.description,
            now=utc_now(),
        )
        return found(updated, "subscription")

    @router.post(
        "/subscriptions/{subscription_id}/rotate-secret",
        tags=["subscriptions"],
        responses=_MISSING,
    )
    async def rotate_secret(
        request: RotateRequest | None = None, subscription_id: str = _ID
    ) -> RotatedSubscription:
        """A new signing secret; deliveries carry both signatures until the grace ends."""
        grace = (request or RotateRequest()).grace
        rotated = found(
            await store.rotate(subscription_id, grace=grace, now=utc_now()), "subscription"
        )
        return RotatedSubscription(
            **rotated.subscription.model_dump(),
            secret=rotated.secret,
            previous_expires_at=rotated.previous_expires_at,
        )

    @router.delete(
        "/subscriptions/{subscription_id}",
        tags=["subscriptions"],
        status_code=204,
        responses=_MISSING,
    )
    async def delete_subscription(subscription_id: str = _ID) -> Response:
        if not await store.delete(subscription_id):
            raise not_found("subscription")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/subscriptions/{subscription_id}/test",
        tags=["subscriptions"],
        responses={**_MISSING, **_TOO_SOON},
    )
    async def test_subscription(subscription_id: str = _ID) -> ProbeResult:
        """Send one signed test event now (not queued, not retried)."""
        own = http is None
        client = http or guarded_client(allow_private=notify.allow_private_urls)
        try:
            receiver = found(await store.receiver(subscription_id, notify, client), "subscription")
            await _once_per_interval(
                redis, settings.streams.keyspace.subscription_test(subscription_id)
            )
            delivery = Delivery.new(
                delivery_id=f"{subscription_id}:test:{secrets.token_hex(8)}",
                receiver=subscription_id,
                transitions=[sample_event(subscription_id)],
                now=utc_now(),
            )
            outcome = await receiver.attempt(delivery)
        finally:
            if own:
                await client.aclose()
        return ProbeResult(
            result="delivered" if outcome.result == "delivered" else "not_delivered",
            reason=_reason(outcome),
            webhook_id=delivery.message_id,
        )

    return router
