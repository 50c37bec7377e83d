"""``/v1/subscriptions``: CRUD on webhook subscribers, and a signed test event.

Creating a subscription returns its generated ``whsec_`` secret, once; no other answer ever
carries it. A subscriber URL must be https and public (no loopback, link-local or private
addresses) unless ``notify.allow_private_urls`` is on; a refused URL is a 422 naming ``url``.
``POST /v1/subscriptions/{id}/test`` sends one signed ``ops.test_event`` through the same
webhook receiver the notifiers use and reports how the endpoint answered.

Usage::

    app.include_router(subscription_router(redis, settings, http), prefix="/v1")
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio import Redis

from config.notify import check_glob
from config.settings import Settings
from service.alerts import AlertTransition
from service.deliver.clock import utc_now
from service.deliver.deliveries import Delivery
from service.deliver.subscriptions import Subscription, Subscriptions
from service.http.errors import invalid, not_found
from service.http.url_guard import UnsafeUrl, check_subscriber_url

__all__ = [
    "CreatedSubscription",
    "ProbeResult",
    "SubscriptionRequest",
    "sample_event",
    "subscription_router",
]

_ID = Path(pattern=r"^sub_[0-9a-f]{16}$")
_MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "no such subscription"}}
TEST_KIND = "ops.test_event"


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    kinds: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=50)
    description: str = Field(default="", max_length=500)

    @field_validator("kinds")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if len(glob) > 128:
                raise ValueError("a kind glob is at most 128 characters")
            check_glob(glob)
        return value


class CreatedSubscription(Subscription):
    """The new subscription with its signing secret: store it now, it is not shown again."""

    secret: str


class ProbeResult(BaseModel):
    """How the endpoint answered the test event (``delivered`` only for a 2xx)."""

    result: Literal["delivered", "retry", "failed", "gone"]
    status_code: int | None
    detail: str
    webhook_id: str


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


def subscription_router(
    redis: Redis, settings: Settings, http: httpx.AsyncClient | None
) -> APIRouter:
    router = APIRouter()
    store = Subscriptions(redis, settings.streams)
    notify = settings.notify

    async def checked(request: SubscriptionRequest) -> SubscriptionRequest:
        try:
            await check_subscriber_url(request.url, allow_private=notify.allow_private_urls)
        except UnsafeUrl as error:
            raise invalid(("body", "url"), str(error)) from None
        return request

    @router.get("/subscriptions", tags=["subscriptions"])
    async def list_subscriptions() -> list[Subscription]:
        """Webhook subscribers made through the API (their secrets are never shown)."""
        return await store.all()

    @router.post("/subscriptions", tags=["subscriptions"], status_code=201)
    async def create_subscription(request: SubscriptionRequest) -> CreatedSubscription:
        """Subscribe an endpoint; the answer carries its ``whsec_`` secret, this once."""
        request = await checked(request)
        created, secret = await store.create(
            request.url, kinds=request.kinds, description=request.description, now=utc_now()
        )
        return CreatedSubscription(**created.model_dump(), secret=secret)

    @router.get("/subscriptions/{subscription_id}", tags=["subscriptions"], responses=_MISSING)
    async def get_subscription(subscription_id: str = _ID) -> Subscription:
        found = await store.get(subscription_id)
        if found is None:
            raise not_found("subscription")
        return found

    @router.put("/subscriptions/{subscription_id}", tags=["subscriptions"], responses=_MISSING)
    async def put_subscription(
        request: SubscriptionRequest, subscription_id: str = _ID
    ) -> Subscription:
        """Change URL, kinds or description; the secret stays."""
        request = await checked(request)
        updated = await store.update(
            subscription_id,
            url=request.url,
            kinds=request.kinds,
            description=request.description,
            now=utc_now(),
        )
        if updated is None:
            raise not_found("subscription")
        return updated

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
        "/subscriptions/{subscription_id}/test", tags=["subscriptions"], responses=_MISSING
    )
    async def test_subscription(subscription_id: str = _ID) -> ProbeResult:
        """Send one signed test event now (not queued, not retried)."""
        own = http is None
        client = http or httpx.AsyncClient()
        try:
            receiver = await store.receiver(subscription_id, notify, client)
            if receiver is None:
                raise not_found("subscription")
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
            result=outcome.result,
            status_code=outcome.status_code,
            detail=outcome.detail,
            webhook_id=delivery.message_id,
        )

    return router
