"""The status page's routes: ``GET /`` (the list) and ``GET /accounts/{advertiser_id}``.

Open like ``/healthz`` (reading needs no token); the actions on the pages call ``/v1`` with a
bearer token the operator enters in the browser. A query the list cannot take (``sort=foo``)
answers 422 with a page naming the parameter; an unknown advertiser a 404 page.

Usage::

    app.include_router(status_router(AccountsReader(redis, settings), redis, settings))
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from redis.asyncio import Redis

from config.fields import TIKTOK_ID
from config.settings import Settings
from service.detect.accounts import AccountsReader
from service.http.account_list import ListQuery
from service.http.status_page import StatusPages

__all__ = ["status_router"]

_ADVERTISER = re.compile(TIKTOK_ID)


def status_router(reader: AccountsReader, redis: Redis, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["status page"], default_response_class=HTMLResponse)
    pages = StatusPages(reader, redis, settings)

    @router.get("/", responses={422: {"description": "a query parameter it cannot take"}})
    async def status_page(request: Request) -> HTMLResponse:
        """Summary per currency, then the accounts: ``q`` (name, id or BC id), ``bc``,
        ``currency``, ``alerts=1``, ``sort`` (name, runway, expiry, forfeit), ``page``."""
        # Empty fields are what a GET form sends for "any": they mean the default.
        given = {k: v for k, v in request.query_params.items() if v != ""}
        try:
            query = ListQuery.model_validate(given)
        except ValidationError as error:
            named = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
            return HTMLResponse(pages.bad_query_page(named), status_code=422)
        return HTMLResponse(await pages.list_page(query))

    @router.get("/accounts/{advertiser_id}", responses={404: {"description": "no such advertiser"}})
    async def account_page(advertiser_id: str) -> HTMLResponse:
        """One advertiser: burn-down, credits, transactions, alerts and deliveries, silences."""
        known = _ADVERTISER.fullmatch(advertiser_id)
        html = await pages.account_page(advertiser_id) if known else None
        if html is None:
            return HTMLResponse(pages.not_found_page(advertiser_id), status_code=404)
        return HTMLResponse(html)

    return router
