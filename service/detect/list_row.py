"""An account's list row: the few figures the status list, its summary and its sorts need,
kept by the detectors beside the state, so the list never reads full states.

``RowWriter.stage`` is the account ``StateStore``'s commit hook: every commit of a state also
writes its row, in the same MULTI, to one hash (``<prefix>:state-rows``, advertiser id -> a
compact JSON array). A row names the state version it was made from and a mark of the ledger
and settings it was made with; a reader holds it while both still hold and makes it again from
the state otherwise (a credit declared through the API since, a state committed by an older
release). ``account_figures`` is the one place the figures are computed: the accounts read
model (``/v1/accounts``, the account page) calls it too, so a row and a view never disagree.
The figures are as of the state's newest observation (API time), never of the wall clock: a
row does not go stale by itself.

Usage::

    rows = RowWriter(redis, settings.streams, ledger_store, settings.detect)
    accounts = StateStore(redis, settings.streams, AccountState, "state", on_commit=rows.stage)
    row = row_of(state, ledger, settings.detect, version)   # what the writer stores
    decoded = decode_row(encode_row(row))                   # None: malformed or older format
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from config.settings import DetectSettings, StreamSettings
from service.detect.figures import credit_estimates, grant_burn
from service.detect.forecast import exhaustion_at
from service.detect.ledger import AccountLedger, Entry
from service.detect.ledger_store import LedgerStore
from service.detect.state import AccountState
from workers.contract.wire import CENT

__all__ = [
    "EXPIRY_HORIZON",
    "AccountFigures",
    "CreditFigure",
    "ListRow",
    "RowWriter",
    "account_figures",
    "decode_row",
    "encode_row",
    "ledger_mark",
    "row_from",
    "row_of",
]

# "Expiring soon" in the list's summary: within this of each account's newest observation.
EXPIRY_HORIZON = timedelta(days=7)
# The encoding's version, first in every row: a reader treats any other as no row at all.
ROW_FORMAT = 1
_ZERO = Decimal(0)
_ROW_JSON = msgspec.json.Encoder()


@dataclass(frozen=True)
class CreditFigure:
    """A credit live now, its reconciled unused estimate and (if the expiry rule projected
    one) what it will still hold at its expiry."""

    entry: Entry
    unused: Decimal
    forfeit: Decimal | None


@dataclass(frozen=True)
class AccountFigures:
    """What an account's state and ledger say beyond its balances, as of its newest observation."""

    burn_per_day: Decimal | None
    runs_out_at: datetime | None
    credits: list[CreditFigure]

    @property
    def next_expiry_at(self) -> datetime | None:
        """The soonest expiry of a live credit that still holds something (to the cent)."""
        return min(
            (
                c.entry.valid_to
                for c in self.credits
                if c.entry.valid_to is not None and c.unused.quantize(CENT)
            ),
            default=None,
        )


def account_figures(
    state: AccountState, ledger: AccountLedger, settings: DetectSettings
) -> AccountFigures:
    """Burn rate, exhaustion and live credits: the same functions the rules call."""
    # The figures measure "today" from state.now: an account seen only through a
    # business-center snapshot has none yet.
    if state.now is None:
        return AccountFigures(None, None, [])
    burn = grant_burn(state, settings, ledger)
    runs_out = None
    if state.last_observed_at is not None and burn is not None:
        runs_out = exhaustion_at(state.valid_grant, burn, state.last_observed_at)
    entries, left = credit_estimates(state, ledger)
    credits = [
        # The expiry rule's own projection, committed with the state.
        CreditFigure(entry, left[entry.id], state.credit_unused.get(entry.id))
        for entry in entries
        if entry.id in left
    ]
    return AccountFigures(burn, runs_out, credits)


class ListRow(msgspec.Struct, frozen=True, kw_only=True):
    """One account as the list, its summary, filters and sorts see it. Amounts are to the
    cent, in ``currency``; ``alerts`` are the open episodes (alert id, kind, since)."""

    # A msgspec struct rather than a frozen dataclass: every account commit makes one, and
    # a frozen dataclass's __init__ (a setattr per field) cost 2.8 us of its ~14.

    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str
    observed_at: datetime | None
    grant: Decimal
    valid_grant: Decimal
    frozen_grant: Decimal
    cash: Decimal
    balance_reminder: bool | None
    cash_shared: bool
    burn_per_day: Decimal | None
    runs_out_at: datetime | None
    next_expiry_at: datetime | None
    projected_forfeit: Decimal
    expiring_soon: Decimal
    forfeit_soon: Decimal
    alerts: tuple[tuple[str, str, datetime], ...]
    # The state version it was made from ("" for a state without one) and ``ledger_mark``.
    version: str = ""
    ledger: str = ""


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT)


def row_of(
    state: AccountState, ledger: AccountLedger, settings: DetectSettings, version: str = ""
) -> ListRow:
    """The account's list row, made from this state (of ``version``) and ledger."""
    return row_from(
        state,
        account_figures(state, ledger, settings),
        version=version,
        ledger=ledger_mark(ledger, settings),
    )


def row_from(
    state: AccountState, figures: AccountFigures, *, version: str = "", ledger: str = ""
) -> ListRow:
    """The row of this state with its figures already computed (``version`` and ``ledger``
    as ``row_of`` stores them; a view, which is never stored, leaves them empty)."""
    profile = state.profile
    horizon = state.last_observed_at + EXPIRY_HORIZON if state.last_observed_at else None
    soon = [
        c
        for c in figures.credits
        if horizon is not None and c.entry.valid_to is not None and c.entry.valid_to <= horizon
    ]
    return ListRow(
        advertiser_id=state.advertiser_id,
        advertiser_name=profile.advertiser_name if profile else "",
        bc_id=profile.bc_id if profile else "",
        currency=profile.currency if profile else "XXX",
        observed_at=state.last_observed_at,
        grant=_cents(state.grant),
        valid_grant=_cents(state.valid_grant),
        frozen_grant=_cents(state.frozen_grant),
        cash=_cents(state.valid_cash),
        balance_reminder=state.balance_reminder,
        cash_shared=state.cash_shared,
        burn_per_day=_cents(figures.burn_per_day) if figures.burn_per_day is not None else None,
        runs_out_at=figures.runs_out_at,
        next_expiry_at=figures.next_expiry_at,
        projected_forfeit=sum((_cents(c.forfeit or _ZERO) for c in figures.credits), _ZERO),
        expiring_soon=sum((_cents(c.unused) for c in soon), _ZERO),
        forfeit_soon=sum((_cents(c.forfeit or _ZERO) for c in soon), _ZERO),
        alerts=tuple(
            sorted(
                ((e.alert_id, key.split("|", 1)[0], e.starts_at) for key, e in state.open.items()),
                key=lambda a: (a[2], a[1]),
            )
        ),
        version=version,
        ledger=ledger,
    )


def ledger_mark(ledger: AccountLedger, settings: DetectSettings) -> str:
    """A short digest of what a row's figures depend on besides the state: the ledger's
    entries (in id order) and the burn window."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(str(settings.burn_days).encode())
    for credit in sorted(ledger.credits, key=lambda c: c.id):
        digest.update(b"\0c" + credit.model_dump_json().encode())
    for program in sorted(ledger.programs, key=lambda p: p.id):
        digest.update(b"\0p" + program.model_dump_json().encode())
    return digest.hexdigest()


def _at(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _parsed_at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def encode_row(row: ListRow) -> bytes:
    """The row as a JSON array (a third of an object's size with field names), UTF-8."""
    # msgspec rather than json.dumps: every account commit encodes one, and it is several
    # times faster; the text is the same JSON (non-ASCII as UTF-8, not escaped; amounts as
    # the text str() gives, which is how msgspec writes a Decimal).
    return _ROW_JSON.encode(
        [
            ROW_FORMAT,
            row.version,
            row.ledger,
            row.advertiser_id,
            row.advertiser_name,
            row.bc_id,
            row.currency,
            _at(row.observed_at),
            row.grant,
            row.valid_grant,
            row.frozen_grant,
            row.cash,
            row.balance_reminder,
            row.cash_shared,
            row.burn_per_day,
            _at(row.runs_out_at),
            _at(row.next_expiry_at),
            row.projected_forfeit,
            row.expiring_soon,
            row.forfeit_soon,
            [[alert_id, kind, since.isoformat()] for alert_id, kind, since in row.alerts],
        ]
    )


def decode_row(raw: bytes | str) -> ListRow | None:
    """A row as ``encode_row`` wrote it; None if it is malformed or of another format."""
    try:
        fields = json.loads(raw)
        if not isinstance(fields, list) or not fields or fields[0] != ROW_FORMAT:
            return None
        (
            _,
            version,
            ledger,
            advertiser_id,
            name,
            bc_id,
            currency,
            observed_at,
            grant,
            valid_grant,
            frozen_grant,
            cash,
            reminder,
            shared,
            burn,
            runs_out,
            next_expiry,
            forfeit,
            expiring,
            forfeit_soon,
            alerts,
        ) = fields
        return ListRow(
            advertiser_id=advertiser_id,
            advertiser_name=name,
            bc_id=bc_id,
            currency=currency,
            observed_at=_parsed_at(observed_at),
            grant=Decimal(grant),
            valid_grant=Decimal(valid_grant),
            frozen_grant=Decimal(frozen_grant),
            cash=Decimal(cash),
            balance_reminder=reminder,
            cash_shared=bool(shared),
            burn_per_day=Decimal(burn) if burn is not None else None,
            runs_out_at=_parsed_at(runs_out),
            next_expiry_at=_parsed_at(next_expiry),
            projected_forfeit=Decimal(forfeit),
            expiring_soon=Decimal(expiring),
            forfeit_soon=Decimal(forfeit_soon),
            alerts=tuple((a, k, datetime.fromisoformat(s)) for a, k, s in alerts),
            version=version,
            ledger=ledger,
        )
    except (ValueError, TypeError, InvalidOperation):
        return None


class RowWriter:
    """Writes the list rows of committed account states, in their commit's transaction."""

    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        ledger: LedgerStore,
        settings: DetectSettings,
    ) -> None:
        self._redis = redis
        self._ledger = ledger
        self._settings = settings
        self._streams = streams

    async def stage(self, pipe: Pipeline, states: Mapping[str, AccountState], version: str) -> None:
        """Queue the rows of ``states`` (all committed as ``version``) on ``pipe``'s MULTI."""
        # The ledgers are read again here rather than handed down from the step that used
        # them: a row whose ledger changed in between carries that ledger's mark, and a
        # reader that sees another mark makes the row again.
        ledgers = await self._ledger.for_advertisers(states)
        space = self._streams.keyspace
        by_shard: dict[int, dict[FieldT, EncodableT]] = {}
        for advertiser_id, state in states.items():
            row = encode_row(row_of(state, ledgers[advertiser_id], self._settings, version))
            by_shard.setdefault(space.shard_of(advertiser_id), {})[advertiser_id] = row
        # A commit holds one shard's states (StateStore commits shard by shard).
        for shard, rows in by_shard.items():
            pipe.hset(self._streams.keyspace.rows_key("state", shard), mapping=rows)
