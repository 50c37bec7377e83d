"""``/v1/credits`` and ``/v1/ladder-programs``: CRUD on the declared credit ledger.

Bodies are the YAML's own models (``config.ledger.Credit`` / ``LadderProgram``), so the API
validates exactly as the config file does. Entries are saved through the detectors' ledger
store (``service.detect.ledger_store.RedisLedger``), where they win over the config's by id; each
answer says where an entry comes from (``config`` or ``api``). A config entry can be
overridden with PUT, and DELETE then removes the override; the config entry itself is the
YAML's to remove (409). Ids are unique across advertisers, as in the YAML.

``POST /v1/credits/import`` takes rows pasted from the Promotions page
(``service.http.promotions_paste``) for one advertiser: every row is validated first, and a
422 names each bad row and field (``["body", "text", <line>, <field>]``); only then are they
all saved, each as a PUT would (pasting the same rows again replaces them). ``dry_run``
validates without saving.

Usage::

    app.include_router(ledger_router(redis, settings), prefix="/v1")
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from config.fields import NAME_PATTERN, TIKTOK_ID_PATTERN, Currency, TikTokId
from config.ledger import Credit, LadderProgram
from config.redis_text import decoded
from config.settings import Settings
from service.detect.ledger_store import ConfigLedger, RedisLedger
from service.http.errors import conflict, found, invalid
from service.http.promotions_paste import parse_promotions
from workers.contract.wire import CENT

__all__ = ["CreditImport", "StoredCredit", "StoredLadderProgram", "ledger_router"]

Source = Literal["config", "api"]
Kind = Literal["credit", "program"]
Entry = Credit | LadderProgram


_READ: dict[int | str, dict[str, Any]] = {404: {"description": "no such entry"}}
_WRITE: dict[int | str, dict[str, Any]] = {409: {"description": "the id exists elsewhere"}}
_DELETE: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such entry"},
    409: {"description": "declared in the config file"},
}


class StoredCredit(Credit):
    source: Source


class StoredLadderProgram(LadderProgram):
    source: Source


class CreditImport(BaseModel):
    """Rows copied from the Promotions page's Available tab, for one advertiser."""

    model_config = ConfigDict(extra="forbid")

    advertiser_id: TikTokId
    currency: Currency
    text: str = Field(min_length=1, max_length=100_000)
    dry_run: bool = False


def _cents(value: Any) -> Any:
    """Amounts as 2-decimal values, however they were written."""
    if isinstance(value, Decimal):
        return value.quantize(CENT)
    if isinstance(value, dict):
        return {k: _cents(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cents(v) for v in value]
    return value


class _Ledger:
    """Every saved and configured entry of one kind, found by id across advertisers."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._config_credits = list(settings.credits)
        self._config_programs = list(settings.ladder_programs)
        self.store = RedisLedger(
            redis, settings.streams, ConfigLedger(settings.credits, settings.ladder_programs)
        )

    async def entries(self, kind: Kind, advertiser_id: str | None) -> list[tuple[Entry, Source]]:
        configured: list[Entry] = list(
            self._config_credits if kind == "credit" else self._config_programs
        )
        advertisers = {e.advertiser_id for e in configured}
        async for key in self._redis.scan_iter(match=self.store.key("*")):
            advertisers.add(decoded(key).rsplit(":", 1)[1])
        if advertiser_id is not None:
            advertisers &= {advertiser_id}
        out: list[tuple[Entry, Source]] = []
        for advertiser in sorted(advertisers):
            ledger = await self.store.for_advertiser(advertiser)
            saved = {decoded(f) for f in await self._redis.hkeys(self.store.key(advertiser))}
            found: tuple[Entry, ...] = ledger.credits if kind == "credit" else ledger.programs
            out.extend((e, "api" if f"{kind}:{e.id}" in saved else "config") for e in found)
        return out

    async def find(self, kind: Kind, entry_id: str) -> tuple[Entry, Source] | None:
        return next(((e, s) for e, s in await self.entries(kind, None) if e.id == entry_id), None)

    async def put(self, entry: Entry) -> None:
        if isinstance(entry, Credit):
            await self.store.put_credit(entry)
        else:
            await self.store.put_program(entry)

    async def create(self, kind: Kind, entry: Entry) -> Entry:
        if await self.find(kind, entry.id) is not None:
            raise conflict(f"{entry.id} exists: PUT /v1/{_path(kind)}/{entry.id} to change it")
        await self.put(entry)
        return entry

    async def replace(self, kind: Kind, entry_id: str, entry: Entry) -> Entry:
        if entry.id != entry_id:
            raise invalid(("body", "id"), "must be the id in the path")
        known = await self.find(kind, entry_id)
        await self.put(entry)
        if known is not None and known[0].advertiser_id != entry.advertiser_id:
            # Moved to another advertiser: the old advertiser's saved copy goes.
            await self.store.delete(known[0].advertiser_id, kind, entry_id)
        return entry

    async def remove(self, kind: Kind, entry_id: str) -> Response:
        entry, source = await self.one(kind, entry_id)
        if source == "config":
            raise conflict(f"{entry_id} is declared in the config file: remove it there")
        await self.store.delete(entry.advertiser_id, kind, entry_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    async def one(self, kind: Kind, entry_id: str) -> tuple[Entry, Source]:
        return found(await self.find(kind, entry_id), kind)


def _credit(entry: Entry, source: Source = "api") -> StoredCredit:
    return StoredCredit.model_validate({**_cents(entry.model_dump()), "source": source})


def _program(entry: Entry, source: Source = "api") -> StoredLadderProgram:
    return StoredLadderProgram.model_validate({**_cents(entry.model_dump()), "source": source})


def ledger_router(redis: Redis, settings: Settings) -> APIRouter:
    router = APIRouter()
    ledger = _Ledger(redis, settings)
    advertiser = Query(default=None, pattern=TIKTOK_ID_PATTERN)
    ident = NAME_PATTERN

    @router.get("/credits", tags=["ledger"])
    async def list_credits(advertiser_id: str | None = advertiser) -> list[StoredCredit]:
        """Declared credits (config and API), optionally of one advertiser."""
        return [_credit(e, s) for e, s in await ledger.entries("credit", advertiser_id)]

    @router.post("/credits", tags=["ledger"], status_code=201, responses=_WRITE)
    async def create_credit(credit: Credit) -> StoredCredit:
        """Declare a credit; 409 if its id exists."""
        return _credit(await ledger.create("credit", credit))

    @router.post("/credits/import", tags=["ledger"], responses={422: {"description": "bad rows"}})
    async def import_credits(request: CreditImport) -> list[StoredCredit]:
        """Declare credits pasted from the Promotions page (tab-separated rows), all or none."""
        rows = parse_promotions(
            request.text, advertiser_id=request.advertiser_id, currency=request.currency
        )
        errors = [
            {"type": "value_error", "loc": ["body", "text", row.line, where], "msg": message}
            for row in rows
            for where, message in row.errors
        ]
        owners = {e.id: e.advertiser_id for e, _ in await ledger.entries("credit", None)}
        credits = [row.credit for row in rows if row.credit is not None]
        for row in rows:
            owner = owners.get(row.id, request.advertiser_id)
            if row.credit is not None and owner != request.advertiser_id:
                message = f"{row.id} is a credit of advertiser {owner}"
                errors.append(
                    {
                        "type": "value_error",
                        "loc": ["body", "text", row.line, "name"],
                        "msg": message,
                    }
                )
        if not rows:
            raise invalid(("body", "text"), "no credit rows found")
        if errors:
            raise HTTPException(status_code=422, detail=errors)
        if not request.dry_run:
            for credit in credits:
                await ledger.replace("credit", credit.id, credit)
        return [_credit(credit) for credit in credits]

    @router.get("/credits/{credit_id}", tags=["ledger"], responses=_READ)
    async def get_credit(credit_id: str = _path_id(ident)) -> StoredCredit:
        return _credit(*await ledger.one("credit", credit_id))

    @router.put("/credits/{credit_id}", tags=["ledger"], responses=_WRITE)
    async def put_credit(credit: Credit, credit_id: str = _path_id(ident)) -> StoredCredit:
        """Create or replace (a config credit is overridden, not edited)."""
        return _credit(await ledger.replace("credit", credit_id, credit))

    @router.delete("/credits/{credit_id}", tags=["ledger"], status_code=204, responses=_DELETE)
    async def delete_credit(credit_id: str = _path_id(ident)) -> Response:
        return await ledger.remove("credit", credit_id)

    @router.get("/ladder-programs", tags=["ledger"])
    async def list_programs(advertiser_id: str | None = advertiser) -> list[StoredLadderProgram]:
        """Ladder programs (config and API), optionally of one advertiser."""
        return [_program(e, s) for e, s in await ledger.entries("program", advertiser_id)]

    @router.post("/ladder-programs", tags=["ledger"], status_code=201, responses=_WRITE)
    async def create_program(program: LadderProgram) -> StoredLadderProgram:
        """Declare a ladder program; 409 if its id exists."""
        return _program(await ledger.create("program", program))

    @router.get("/ladder-programs/{program_id}", tags=["ledger"], responses=_READ)
    async def get_program(program_id: str = _path_id(ident)) -> StoredLadderProgram:
        return _program(*await ledger.one("program", program_id))

    @router.put("/ladder-programs/{program_id}", tags=["ledger"], responses=_WRITE)
    async def put_program(
        program: LadderProgram, program_id: str = _path_id(ident)
    ) -> StoredLadderProgram:
        """Create or replace (a config program is overridden, not edited)."""
        return _program(await ledger.replace("program", program_id, program))

    @router.delete(
        "/ladder-programs/{program_id}", tags=["ledger"], status_code=204, responses=_DELETE
    )
    async def delete_program(program_id: str = _path_id(ident)) -> Response:
        return await ledger.remove("program", program_id)

    return router


def _path(kind: Kind) -> str:
    return "credits" if kind == "credit" else "ladder-programs"


def _path_id(pattern: str) -> Any:
    return Path(pattern=pattern)
