"""Where the detectors get an advertiser's declared ledger: the config, and Redis on top.

``ConfigLedger`` serves ``credits:`` / ``ladder_programs:`` from the settings. ``RedisLedger``
adds entries kept in Redis (one hash per advertiser, ``<prefix>:ledger:<advertiser_id>``,
fields ``credit:<id>`` / ``program:<id>`` holding JSON), which win over the config's by id:
the HTTP API of a later release edits those. Every advertiser with saved entries is also in
the hash ``<prefix>:ledger-index`` with a token that changes with every edit (written in the
same transaction), so a reader of thousands of ledgers (the status list) finds the few saved
ones without a SCAN and re-reads only those edited since, and ``for_advertisers`` (the
detectors, every batch) asks the index first and reads only the saved ledgers it names.
Ledgers saved before the index existed are put in it once (``index_saved_ledgers``, at the
service role's start, which then sets ``<prefix>:ledger-index-built``); until that mark is
set, ``for_advertisers`` reads every advertiser's hash as it always did. Undeclared entries
(issued credit nobody declared) are not here: they live in each account's detector state,
committed with the transaction that revealed them.

Usage::

    store = RedisLedger(redis, settings.streams, ConfigLedger(settings.credits,
                                                             settings.ladder_programs))
    ledger = await store.for_advertiser("7100000000001")
    await store.put_credit(credit)
    added = await index_saved_ledgers(redis, settings.streams)   # once, at start
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Protocol, TypeVar

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from config.ledger import Credit, LadderProgram
from config.redis_text import decoded
from config.settings import StreamSettings
from service.detect.ledger import AccountLedger

__all__ = ["ConfigLedger", "LedgerStore", "RedisLedger", "index_saved_ledgers"]

log = structlog.get_logger(__name__)

_NOTHING = AccountLedger()
# How many parsed entries a RedisLedger keeps (see ``RedisLedger._parsed``).
_SEEN_KEPT = 50_000
# Ledger keys the one-time index migration asks SCAN for, and indexes, per round trip.
_MIGRATION_PAGE = 1000
_E = TypeVar("_E", Credit, LadderProgram)


def _edit_token() -> str:
    """An index entry's value: new with every edit, so readers re-read only what changed."""
    return secrets.token_hex(8)


class LedgerStore(Protocol):
    async def for_advertiser(self, advertiser_id: str) -> AccountLedger: ...

    async def for_advertisers(self, advertiser_ids: Iterable[str]) -> dict[str, AccountLedger]:
        """Many advertisers' ledgers at once (the detectors read a whole batch's)."""
        ...


class ConfigLedger:
    """The ledger declared in the settings, indexed by advertiser."""

    def __init__(self, credits: Iterable[Credit], programs: Iterable[LadderProgram]) -> None:
        self._credits: dict[str, list[Credit]] = {}
        self._programs: dict[str, list[LadderProgram]] = {}
        for credit in credits:
            self._credits.setdefault(credit.advertiser_id, []).append(credit)
        for program in programs:
            self._programs.setdefault(program.advertiser_id, []).append(program)

    async def for_advertiser(self, advertiser_id: str) -> AccountLedger:
        credits, programs = self._credits.get(advertiser_id), self._programs.get(advertiser_id)
        if not credits and not programs:
            return _NOTHING  # most advertisers: one shared (frozen) ledger, not one each
        return AccountLedger(credits=tuple(credits or ()), programs=tuple(programs or ()))

    async def for_advertisers(self, advertiser_ids: Iterable[str]) -> dict[str, AccountLedger]:
        return {
            advertiser_id: await self.for_advertiser(advertiser_id)
            for advertiser_id in advertiser_ids
        }


class RedisLedger:
    """Ledger entries saved in Redis, over a base ledger (the config's)."""

    def __init__(self, redis: Redis, streams: StreamSettings, base: LedgerStore) -> None:
        self._redis = redis
        self._streams = streams
        self._base = base
        self._seen: dict[tuple[type[Credit | LadderProgram], bytes], Credit | LadderProgram] = {}
        # Whether every saved ledger is known to be in the index (the mark is never unset).
        self._index_complete = False

    def key(self, advertiser_id: str) -> str:
        return self._streams.keyspace.ledger(advertiser_id)

    @property
    def index_key(self) -> str:
        return self._streams.keyspace.ledger_index()

    async def put_credit(self, credit: Credit) -> None:
        await self._put(credit.advertiser_id, f"credit:{credit.id}", credit.model_dump_json())

    async def put_program(self, program: LadderProgram) -> None:
        await self._put(program.advertiser_id, f"program:{program.id}", program.model_dump_json())

    async def _put(self, advertiser_id: str, field: str, entry: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(advertiser_id), field, entry)
            pipe.hset(self.index_key, advertiser_id, _edit_token())
            await pipe.execute()

    async def indexed(self) -> dict[str, str]:
        """The advertisers with entries saved (since the index exists), each with a token that
        changes with every edit of its entries (a ledger whose entries were all deleted stays,
        and reads as its base ledger)."""
        raw = await self._redis.hgetall(self.index_key)
        return {decoded(a): decoded(token) for a, token in raw.items()}

    async def delete(self, advertiser_id: str, kind: str, entry_id: str) -> bool:
        """Remove a saved ``credit`` or ``program``; config entries cannot be deleted here."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.key(advertiser_id), f"{kind}:{entry_id}")
            pipe.hset(self.index_key, advertiser_id, _edit_token())
            removed, _ = await pipe.execute()
        return bool(removed)

    async def for_advertiser(self, advertiser_id: str) -> AccountLedger:
        return (await self.for_advertisers([advertiser_id]))[advertiser_id]

    async def for_advertisers(self, advertiser_ids: Iterable[str]) -> dict[str, AccountLedger]:
        ids = list(dict.fromkeys(advertiser_ids))
        bases = await self._base.for_advertisers(ids)
        if not ids:
            return bases
        # Nearly every advertiser has nothing saved: one HMGET of the index finds the few
        # that have, rather than an HGETALL per advertiser (the detectors read a batch's).
        if not self._index_complete:
            key = self._streams.keyspace.ledger_index_built()
            self._index_complete = bool(await self._redis.exists(key))
        if self._index_complete:
            marks = await self._redis.hmget(self.index_key, ids)
            read = [a for a, mark in zip(ids, marks, strict=True) if mark is not None]
        else:
            read = ids
        saved: list[dict[bytes, bytes]] = []
        if read:
            async with self._redis.pipeline(transaction=False) as pipe:
                for advertiser_id in read:
                    pipe.hgetall(self.key(advertiser_id))
                saved = await pipe.execute()
        ledgers = dict(bases)
        for advertiser_id, entries in zip(read, saved, strict=True):
            ledgers[advertiser_id] = self._merge(advertiser_id, bases[advertiser_id], entries)
        return ledgers

    def _parsed(self, model: type[_E], raw: bytes) -> _E:
        """An entry parsed from its JSON; the same JSON again is not parsed again (readers
        of thousands of ledgers read the same entries every few seconds; entries are frozen)."""
        key = (model, raw)
        entry = self._seen.get(key)
        if entry is None:
            if len(self._seen) >= _SEEN_KEPT:
                self._seen.clear()
            entry = self._seen[key] = model.model_validate_json(raw)
        assert isinstance(entry, model)
        return entry

    def _merge(
        self, advertiser_id: str, base: AccountLedger, saved: dict[bytes, bytes]
    ) -> AccountLedger:
        """The saved entries over the base ones, by id."""
        if not saved:
            return base
        credits = {credit.id: credit for credit in base.credits}
        programs = {program.id: program for program in base.programs}
        for field, raw in saved.items():
            name = field.decode()
            kind, _, entry_id = name.partition(":")
            try:
                if kind == "credit":
                    credits[entry_id] = self._parsed(Credit, raw)
                elif kind == "program":
                    programs[entry_id] = self._parsed(LadderProgram, raw)
            except ValidationError:
                # One bad entry must not blind the detectors to the rest of the ledger.
                log.error("ledger.entry_corrupt", advertiser_id=advertiser_id, field=name)
        return AccountLedger(credits=tuple(credits.values()), programs=tuple(programs.values()))


async def index_saved_ledgers(redis: Redis, streams: StreamSettings) -> int:
    """The one-time migration of ledgers saved before the index existed: each advertiser
    with a ledger hash and no index entry gets one (HSETNX, so a concurrent edit's token
    stands), then the mark is set; returns how many were added. Once marked it does nothing
    (a SCAN walks the whole keyspace: not on every start)."""
    space = streams.keyspace
    if await redis.exists(space.ledger_index_built()):
        return 0
    prefix = space.ledger("")
    added = 0
    found: list[str] = []
    async for key in redis.scan_iter(match=space.ledger("*"), count=_MIGRATION_PAGE):
        found.append(decoded(key)[len(prefix) :])
        if len(found) == _MIGRATION_PAGE:
            added += await _index(redis, space.ledger_index(), found)
            found = []
    added += await _index(redis, space.ledger_index(), found)
    await redis.set(space.ledger_index_built(), "1")
    log.info("ledger.index_built", added=added)
    return added


async def _index(redis: Redis, index: str, advertiser_ids: list[str]) -> int:
    """HSETNX each of ``advertiser_ids`` into ``index`` in one round trip; how many were new."""
    if not advertiser_ids:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for advertiser_id in advertiser_ids:
            pipe.hsetnx(index, advertiser_id, _edit_token())
        return sum(map(int, await pipe.execute()))
