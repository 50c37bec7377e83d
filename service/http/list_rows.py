"""The status list's rows: every account's ``ListRow``, read from the rows the detectors keep,
never from full states (except for the few a reader must make itself).

The detectors write each account's row in the same transaction as its state
(``service/detect/list_row.py``), with the state version it was made from and a mark of its
ledger. A refresh reads the versions (one HGETALL), the ledger index (one HGETALL; the saved
ledgers edited since the last refresh are read again, one pipeline) and, for the accounts
whose version or ledger differ from what it holds, their stored rows (one HMGET). What older
releases left without a version or outside the ledger index is found by walking the keyspace
(SCAN) at the first refresh and then every ``DISCOVER_EVERY_S`` in the background: a SCAN
walks every key in the database, so it is not done per request. A stored row is taken
while its version and ledger mark are the account's now; otherwise (a credit declared through
the API since, a state committed by an older release without a row) the row is made here from
the state, by the same ``row_of``, and stored back if the state's version still stands (a Lua
compare-and-set, so a newer row of the detectors is never overwritten): once per account, not
once per start. At most ``MAKE_INLINE`` rows are made within a refresh; the rest are made in
the background, ``MAKE_INLINE`` at a time, and listed as they are done (``pending`` counts the
accounts not listed yet), so the first request after an upgrade answers in about a second, not
half a minute. A state written without a version is made again on every refresh until the
detectors commit it.

The rows on screen need the full view (burn-down history, credits, ladders): ``full`` reads
those accounts' versions and ledgers (they are a page's, so fresh on every request) and keeps
their views for at most ``FULL_KEPT`` accounts, reusing one while its version and ledger hold.

Usage::

    rows = ListRows(reader, redis, settings)
    listed = await rows.refresh()          # every account's row, by name
    shown = await rows.full(["7100000000001", ...])   # AccountViews, in the order given
"""

from __future__ import annotations

import asyncio
import time as clock
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

import structlog
from redis.asyncio import Redis

from config.settings import Settings
from service.detect.accounts import ACCOUNT_NAMESPACE, AccountsReader, AccountView
from service.detect.ledger import AccountLedger
from service.detect.list_row import (
    ListRow,
    decode_row,
    encode_row,
    ledger_mark,
    row_of,
)

__all__ = ["DISCOVER_EVERY_S", "FULL_KEPT", "MAKE_INLINE", "ListRows"]

log = structlog.get_logger(__name__)

# How many full views (with burn-down history) are kept: a few pages' worth of rows.
FULL_KEPT = 1_000
# How many rows a refresh makes from states itself (about a second of 16 KB states on 2 busy
# cores); more are made in the background, this many at a time.
MAKE_INLINE = 500
# How often the whole keyspace is walked (SCAN) for what older releases left: states without a
# version, ledgers saved before the ledger index. Refreshes read hashes only.
DISCOVER_EVERY_S = 300.0

# Store a made row only if the state's version is still the one it was made from.
_STORE_IF_CURRENT = """
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
  end
end
return 0
"""


@dataclass(frozen=True)
class _Found:
    """A walk of the keyspace: every advertiser with a state, and with ledger entries saved
    (those an older release wrote: a state without a version, a ledger outside the index)."""

    at: float  # monotonic
    states: frozenset[str]
    ledgers: frozenset[str]


@dataclass(frozen=True)
class _Kept:
    version: str
    ledger: AccountLedger
    row: ListRow


@dataclass(frozen=True)
class _KeptView:
    version: str
    ledger: AccountLedger
    view: AccountView


class ListRows:
    """Every account's list row, from the detectors' rows; made from states only when missing."""

    def __init__(self, reader: AccountsReader, redis: Redis, settings: Settings) -> None:
        self._reader = reader
        self._redis = redis
        self._settings = settings
        self._space = settings.streams.keyspace
        self._store = redis.register_script(_STORE_IF_CURRENT)
        self._rows: dict[str, _Kept] = {}
        self._full: OrderedDict[str, _KeptView] = OrderedDict()
        # Rows the background made of states without a version (those are not stored).
        self._made: dict[str, _Kept] = {}
        self._backfill: asyncio.Task[None] | None = None
        self._backfilling: set[str] = set()
        self._discovery: _Found | None = None
        # Saved ledgers by advertiser, with the index token they were read at.
        self._saved: dict[str, tuple[str, AccountLedger]] = {}
        self._discovering: asyncio.Task[None] | None = None
        self.pending = 0

    async def refresh(self) -> list[ListRow]:
        """Every account's row as of now (those ready), by name (then id)."""
        found = await self._found()
        versions = await self._reader.versions()
        for advertiser_id in found.states:  # those without a version (older releases)
            versions.setdefault(advertiser_id, None)
        ledgers = await self._ledgers(versions, found.ledgers)
        rows: dict[str, _Kept] = {}
        changed: list[str] = []
        for advertiser_id, version in versions.items():
            kept = self._rows.get(advertiser_id)
            if _holds(kept, version, ledgers[advertiser_id]):
                assert kept is not None
                rows[advertiser_id] = kept
            else:
                changed.append(advertiser_id)
        stored = await self._stored(changed)
        missing: dict[str, AccountLedger] = {}
        for advertiser_id in changed:
            version, ledger = versions[advertiser_id] or "", ledgers[advertiser_id]
            row = stored.get(advertiser_id)
            made = self._made.pop(advertiser_id, None)
            if row is not None and version and row.version == version and self._fits(row, ledger):
                rows[advertiser_id] = _Kept(version, ledger, row)
            elif made is not None and made.version == version and made.ledger == ledger:
                rows[advertiser_id] = made
            else:
                missing[advertiser_id] = ledger
        # Those a background pass is making are left to it.
        running = self._backfill is not None and not self._backfill.done()
        waiting = {a: ledger for a, ledger in missing.items() if a not in self._backfilling}
        now = dict(islice(waiting.items(), MAKE_INLINE))
        rows.update(await self._make(now, versions))
        later = {a: waiting[a] for a in waiting if a not in now}
        if later and not running:
            self._backfilling = set(later)
            self._backfill = asyncio.create_task(self._make_later(later, versions))
        self.pending = len(missing) - len(now)
        self._rows = rows
        return sorted(
            (k.row for k in rows.values()),
            key=lambda r: (r.advertiser_name.lower(), r.advertiser_id),
        )

    async def full(self, advertiser_ids: Sequence[str]) -> list[AccountView]:
        """Full views (with burn-down history) of the given advertisers (those known), in the
        order given, as of now: a kept one is reused while its version and ledger hold."""
        versions = await self._reader.versions(advertiser_ids)
        ledgers = await self._reader.ledgers(advertiser_ids)
        views: dict[str, AccountView] = {}
        for a in advertiser_ids:
            kept = self._full.get(a)
            if kept is not None and _holds(kept, versions[a], ledgers[a]):
                views[a] = kept.view
        wanted = {a: ledgers[a] for a in advertiser_ids if a not in views}
        for view in await self._reader.views_with(wanted, history=True):
            views[view.advertiser_id] = view
            if version := versions.get(view.advertiser_id):
                kept_view = _KeptView(version, wanted[view.advertiser_id], view)
                self._full[view.advertiser_id] = kept_view
                self._full.move_to_end(view.advertiser_id)
        while len(self._full) > FULL_KEPT:
            self._full.popitem(last=False)
        return [views[a] for a in advertiser_ids if a in views]

    async def _ledgers(
        self, advertiser_ids: Iterable[str], unindexed: frozenset[str]
    ) -> dict[str, AccountLedger]:
        """Every account's ledger: the config's, with the entries saved in Redis over it for
        those in the ledger index (read again only when their token changed) and for those
        found outside it (read every time)."""
        ids = list(advertiser_ids)
        tokens = await self._reader.ledger_tokens()
        saved = [a for a in ids if a in tokens or a in unindexed]
        reread = [
            a
            for a in saved
            if a in unindexed or a not in self._saved or self._saved[a][0] != tokens.get(a)
        ]
        fresh = await self._reader.ledgers(reread)
        self._saved = {
            a: (tokens.get(a, ""), fresh[a]) if a in fresh else self._saved[a] for a in saved
        }
        base = await self._reader.base_ledgers(a for a in ids if a not in self._saved)
        return base | {a: ledger for a, (_, ledger) in self._saved.items()}

    async def _found(self) -> _Found:
        """What the last walk of the keyspace found; the first refresh waits for one, later
        ones start the next in the background once ``DISCOVER_EVERY_S`` passed."""
        found = self._discovery
        if found is None:
            found = self._discovery = await self._discover()
        elif clock.monotonic() - found.at > DISCOVER_EVERY_S and (
            self._discovering is None or self._discovering.done()
        ):
            self._discovering = asyncio.create_task(self._rediscover())
        return found

    async def _discover(self) -> _Found:
        states, ledgers = await self._reader.scanned()
        return _Found(clock.monotonic(), frozenset(states), frozenset(ledgers))

    async def _rediscover(self) -> None:
        try:
            self._discovery = await self._discover()
        except Exception:
            log.exception("status.rows_discovery_failed")

    def _fits(self, row: ListRow, ledger: AccountLedger) -> bool:
        return row.ledger == ledger_mark(ledger, self._settings.detect)

    async def _stored(self, advertiser_ids: Sequence[str]) -> dict[str, ListRow]:
        """The detectors' rows of these advertisers (those readable)."""
        if not advertiser_ids:
            return {}
        raws: list[bytes | str | None] = []
        if len(advertiser_ids) > len(self._rows):  # a first refresh: all of them at once
            for shard in range(self._space.shards):
                key = self._space.rows_key(ACCOUNT_NAMESPACE, shard)
                raws.extend((await self._redis.hgetall(key)).values())
        else:
            for shard, ids in self._space.by_shard(advertiser_ids).items():
                key = self._space.rows_key(ACCOUNT_NAMESPACE, shard)
                raws.extend(await self._redis.hmget(key, ids))
        found: dict[str, ListRow] = {}
        for raw in raws:
            if raw is not None and (row := decode_row(raw)) is not None:
                found[row.advertiser_id] = row
        return found

    async def _make(
        self, ledgers: Mapping[str, AccountLedger], versions: Mapping[str, str | None]
    ) -> dict[str, _Kept]:
        """Rows made from the states (those readable), stored back where their version holds."""
        if not ledgers:
            return {}
        states = await self._reader.states(list(ledgers))
        detect = self._settings.detect

        def made() -> dict[str, _Kept]:
            out: dict[str, _Kept] = {}
            for state in states:
                a = state.advertiser_id
                version = versions.get(a) or ""
                out[a] = _Kept(version, ledgers[a], row_of(state, ledgers[a], detect, version))
            return out

        # CPU work (decoding was done off the loop too): health checks keep answering.
        rows = await asyncio.to_thread(made)
        storable = [k.row for k in rows.values() if k.version]
        by_id = {row.advertiser_id: row for row in storable}
        for shard, ids in self._space.by_shard(list(by_id)).items():
            # One script per shard: its versions and rows hashes share the shard's slot.
            args = [x for a in ids for x in (a, by_id[a].version, encode_row(by_id[a]))]
            keys = [
                self._space.versions_key(ACCOUNT_NAMESPACE, shard),
                self._space.rows_key(ACCOUNT_NAMESPACE, shard),
            ]
            await self._store(keys=keys, args=args)
        return rows

    async def _make_later(
        self, missing: Mapping[str, AccountLedger], versions: Mapping[str, str | None]
    ) -> None:
        """The background pass: rows the refresh left, ``MAKE_INLINE`` at a time."""
        ids = list(missing)
        try:
            for start in range(0, len(ids), MAKE_INLINE):
                chunk = {a: missing[a] for a in ids[start : start + MAKE_INLINE]}
                made = await self._make(chunk, versions)
                # Stored ones are read back by the next refresh; the rest are handed over.
                self._made.update({a: k for a, k in made.items() if not k.version})
        except Exception:
            log.exception("status.rows_backfill_failed")
        finally:
            self._backfilling = set()


def _holds(kept: _Kept | _KeptView | None, version: str | None, ledger: AccountLedger) -> bool:
    """What is kept still stands: made from this version (there is one) with this ledger."""
    return bool(version) and kept is not None and kept.version == version and kept.ledger == ledger
