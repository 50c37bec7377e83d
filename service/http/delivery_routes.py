"""``/v1/deliveries``: read one delivery with its attempts, and replay it.

A replay is the store's own (``DeliveryStore.replay``, as ``creditwatch deliveries replay``
does): the delivery is due at once with its retry schedule started over, and the running
service's sender sends it; the attempts made before stay in its history.

Usage::

    v1.include_router(delivery_router(redis, settings))
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Path
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.deliveries import Delivery, DeliveryStore
from service.http.errors import found

__all__ = ["delivery_router", "delivery_store"]

_ID = Path(pattern=r"^[0-9A-Za-z_.:-]{1,300}$")
_MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "no such delivery"}}


def delivery_store(redis: Redis, settings: Settings) -> DeliveryStore:
    """The notifiers' delivery store, with their history length."""
    history = timedelta(days=settings.notify.history_days)
    return DeliveryStore(redis, settings.streams, history=history)


def delivery_router(redis: Redis, settings: Settings) -> APIRouter:
    router = APIRouter()
    store = delivery_store(redis, settings)

    @router.get("/deliveries/{delivery_id}", tags=["deliveries"], responses=_MISSING)
    async def get_delivery(delivery_id: str = _ID) -> Delivery:
        """One delivery: what it carries, to which receiver, and every attempt."""
        return found(await store.get(delivery_id), "delivery")

    @router.post("/deliveries/{delivery_id}/replay", tags=["deliveries"], responses=_MISSING)
    async def replay_delivery(delivery_id: str = _ID) -> Delivery:
        """Send again from the start of the retry schedule (the service's sender sends it)."""
        return found(await store.replay(delivery_id, utc_now()), "delivery")

    return router
