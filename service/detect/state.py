"""Detector state, and the one Redis transaction that advances it.

Two kinds of state: ``AccountState`` per advertiser (balances, spend per day, processed
transactions, open alert episodes, ...) and ``CenterState`` per business center (source
status, the center's own balance). States and the alert transitions they cause are written
together (WATCH/MULTI/EXEC), a whole batch of states at a time, so a snapshot is either fully
applied (state saved *and* its transitions on the alerts stream) or not at all. A
re-delivered or older snapshot finds its fact already recorded and emits nothing:
"at-least-once in, exactly-once alerts out". States are msgspec structs, stored as
MessagePack arrays (``encode_state``, ``StateCodec``); states stored as pydantic JSON by
earlier versions are migrated on read, in ``StateCodec``.

Usage::

    store = StateStore(redis, settings.streams, AccountState, "state")
    transitions = await store.apply(advertiser_id, lambda state: evaluate(state, ...))
    transitions = await store.apply_many({advertiser_id: step, ...})   # one transaction
"""

from __future__ import annotations

import secrets
from collections.abc import (
    Awaitable,
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import GenericAlias
from typing import TYPE_CHECKING, Annotated, Any, Generic, NamedTuple, TypeVar

import msgspec
import msgspec.inspect
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT

from config.settings import StreamSettings
from service import metrics
from service.optimistic import Decision, commit
from workers.contract.alerts import AlertTransition
from workers.contract.envelope import stream_entry

__all__ = [
    "AccountState",
    "BalancePoint",
    "CenterState",
    "DayFigure",
    "DayMap",
    "Evaluation",
    "Midnights",
    "OnCommit",
    "OpenEpisode",
    "Profile",
    "SpanTotal",
    "Spans",
    "SpendDays",
    "StateCodec",
    "StateStore",
    "Step",
    "TransactionRecord",
    "encode_state",
    "fold",
]

log = structlog.get_logger(__name__)


# States are msgspec Structs, not pydantic models: every snapshot decodes, copies and encodes
# one, and msgspec does that several times faster. Pydantic stays at the edges (settings,
# the HTTP API, the stream contract). ``msgspec.structs.replace`` is the copy-with-changes.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class _Record(msgspec.Struct, frozen=True, array_like=True):
    """A state record: immutable, stored as an array in field order, without field names
    (a third of a small state); subclasses are ``kw_only`` (msgspec does not inherit that).
    New fields go at the end, with a default: older arrays decode without them."""


class OpenEpisode(_Record, frozen=True, kw_only=True):
    """An alert that is firing now: what its resolved transition will need."""

    alert_id: str
    starts_at: Instant


class Profile(_Record, frozen=True, kw_only=True):
    """Who an advertiser is, for alert bodies: from the newest snapshot that said so."""

    advertiser_name: str = ""
    bc_id: str
    currency: str


# The records a state holds many of are named tuples, stored as arrays: much smaller than
# objects with field names, and quicker to decode on every snapshot.


class BalancePoint(NamedTuple):
    """Balances at one observation: intraday burn is read from their drops."""

    at: Instant
    grant: Decimal
    cash: Decimal


class DayFigure(NamedTuple):
    """One day's spend as last observed; a later observation replaces it, never adds."""

    cash: Decimal
    grant: Decimal
    total: Decimal
    observed_at: Instant


class SpanTotal(NamedTuple):
    """The spend of the days from its key's day to ``last``, rolled out of the revision
    window into one figure (see ``facts.roll``): what allocation and the ladder windows
    still need of days that no longer change."""

    last: date
    cash: Decimal
    grant: Decimal
    total: Decimal


V = TypeVar("V")
# Days are stored as their number since this one: 3 bytes of MessagePack, not 11 of ISO text.
_EPOCH = date(2000, 1, 1).toordinal()


if TYPE_CHECKING:

    class _Days(Mapping[date, V]): ...

else:
    # Not a Mapping subclass at run time: msgspec would encode one as a map of ISO dates
    # itself instead of asking ``_encode_days``; registered as one below, for isinstance.
    class _Days(Generic[V]): ...


class DayMap(_Days[V]):
    """Figures by UTC day, read-only: what a state keeps per day (see ``encode_state``)."""

    __slots__ = ("_days",)
    # The figure type, for decoding.
    value_type: type

    def __init__(self, days: Mapping[date, V] | None = None) -> None:
        self._days: dict[date, V] = dict(days or {})

    def __getitem__(self, day: date) -> V:
        return self._days[day]

    def __iter__(self) -> Iterator[date]:
        return iter(self._days)

    def __len__(self) -> int:
        return len(self._days)

    def __contains__(self, day: object) -> bool:
        return day in self._days

    def get(self, day: date, default: Any = None) -> Any:
        return self._days.get(day, default)

    def keys(self) -> KeysView[date]:
        return self._days.keys()

    def items(self) -> ItemsView[date, V]:
        return self._days.items()

    def values(self) -> ValuesView[V]:
        return self._days.values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DayMap):
            return self._days == other._days
        return isinstance(other, Mapping) and self._days == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # mutable contents' equality, as a dict's

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._days!r})"


Mapping.register(DayMap)


class SpendDays(DayMap[DayFigure]):
    """One source's day figures."""

    value_type = DayFigure


class Spans(DayMap[SpanTotal]):
    """One source's rolled-up spans, by first day."""

    value_type = SpanTotal


class Midnights(DayMap[Decimal]):
    """The grant balance at each recent midnight, by the day that ended there."""

    value_type = Decimal


class TransactionRecord(_Record, frozen=True, kw_only=True):
    """A processed credit transaction, and the declared credit it was matched to (if any)."""

    transaction_type: str
    amount: Decimal
    create_time: Instant
    credit_id: str | None = None


class AccountState(_Record, frozen=True, kw_only=True):
    """What the detectors remember about one advertiser between snapshots."""

    advertiser_id: str
    profile: Profile | None = None
    # The newest balance snapshot's time, and the newest time of any snapshot (API time).
    last_observed_at: Instant | None = None
    now: Instant | None = None
    valid_grant: Decimal = Decimal(0)
    grant: Decimal = Decimal(0)
    frozen_grant: Decimal = Decimal(0)
    valid_cash: Decimal = Decimal(0)
    # TikTok's own "balance hit the line" flag, as last reported (None: not reported).
    balance_reminder: bool | None = None
    # The cash figures are a shared Payment Portfolio's, not this account's alone.
    cash_shared: bool = False
    # The largest valid grant balance seen since the last top-up that ended a low episode.
    peak_grant: Decimal = Decimal(0)
    history: list[BalancePoint] = []
    # The grant balance at each recent UTC midnight, by the day that ended there: what
    # reconciliation compares once that day's spend figure has settled.
    grant_at_midnight: Midnights = msgspec.field(default_factory=Midnights)
    # source ("bc_cost" / "report") -> day -> the newest figure of that day, for the days
    # that may still be revised or that the burn rate reads; older days are in ``rolled``.
    spend: dict[str, SpendDays] = {}
    # source -> first day of a span -> the span's total (days older than ``spend``'s).
    rolled: dict[str, Spans] = {}
    transactions: dict[str, TransactionRecord] = {}
    open: dict[str, OpenEpisode] = {}
    closed: dict[str, Instant] = {}
    # Keys of one-shot notifications already sent (a horizon crossed, a tier reached, ...).
    notified: list[str] = []
    # Per live credit, what its expiry is projected to forfeit (as of the newest evaluation).
    credit_unused: dict[str, Decimal] = {}
    mismatch_since: Instant | None = None


class CenterState(_Record, frozen=True, kw_only=True):
    """What the detectors remember about one business center."""

    bc_id: str
    # source -> time of its newest status; the sources whose last poll failed auth, and
    # those waiting on a suspended endpoint.
    status_at: dict[str, Instant] = {}
    auth_failed: list[str] = []
    rate_limited: list[str] = []
    balance_at: Instant | None = None
    currency: str | None = None
    grant: Decimal = Decimal(0)
    valid_grant: Decimal = Decimal(0)
    open: dict[str, OpenEpisode] = {}
    closed: dict[str, Instant] = {}


S = TypeVar("S", AccountState, CenterState)


def _encode_days(value: Any) -> Any:
    if isinstance(value, DayMap):
        return {day.toordinal() - _EPOCH: figure for day, figure in value.items()}
    raise NotImplementedError(f"cannot store {type(value).__name__}")


def _decode_days(kind: type, value: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, DayMap) and isinstance(value, dict):
        if not value:
            return kind()
        figures = msgspec.convert(list(value.values()), GenericAlias(list, (kind.value_type,)))
        # Day numbers, or ISO dates (states stored before day numbers, or built in tests).
        days = [
            date.fromordinal(key + _EPOCH) if isinstance(key, int) else date.fromisoformat(key)
            for key in value
        ]
        return kind(dict(zip(days, figures, strict=True)))
    raise NotImplementedError(f"cannot decode {kind}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_encode_days)


def encode_state(state: AccountState | CenterState) -> bytes:
    """A state as stored in Redis: MessagePack arrays (amounts as exact decimal text, instants
    as MessagePack timestamps, days as day numbers), a fraction of the JSON it replaced."""
    return _ENCODER.encode(state)


class StateCodec(Generic[S]):
    """Decodes stored states of one model (``decode`` raises ``msgspec.DecodeError``,
    ``ValidationError`` included, for anything that is not one)."""

    def __init__(self, model: type[S]) -> None:
        self._model: type[S] = model
        self._current: msgspec.msgpack.Decoder[S] = msgspec.msgpack.Decoder(
            model, dec_hook=_decode_days
        )

    def decode(self, raw: bytes | str) -> S:
        if isinstance(raw, str) or raw[:1] == b"{":
            return self._migrated(raw)
        return self._current.decode(raw)

    def _migrated(self, raw: bytes | str) -> S:
        """Migration, the one place for it: states written before the MessagePack encoding
        are pydantic JSON objects (a MessagePack state is an array, never a "{" byte). The
        fields and value forms are the same, only named: each object is laid out as its
        record's array, then validated as usual. The next commit writes MessagePack."""
        named = msgspec.json.decode(raw)
        fields = _as_arrays(named, msgspec.inspect.type_info(self._model))
        migrated: S = msgspec.convert(fields, self._model, dec_hook=_decode_days)
        return migrated


def _as_arrays(value: Any, kind: msgspec.inspect.Type) -> Any:
    """A JSON value of ``kind`` with every record object turned into its field array."""
    if isinstance(kind, msgspec.inspect.StructType) and isinstance(value, dict):
        return [
            _as_arrays(value[field.encode_name], field.type)
            if field.encode_name in value
            else _default(field)
            for field in kind.fields
        ]
    if isinstance(kind, msgspec.inspect.UnionType):
        records = [t for t in kind.types if isinstance(t, msgspec.inspect.StructType)]
        return _as_arrays(value, records[0]) if records and isinstance(value, dict) else value
    if isinstance(kind, msgspec.inspect.DictType) and isinstance(value, dict):
        return {k: _as_arrays(v, kind.value_type) for k, v in value.items()}
    if isinstance(kind, msgspec.inspect.ListType) and isinstance(value, list):
        return [_as_arrays(v, kind.item_type) for v in value]
    return value


def _default(field: msgspec.inspect.Field) -> Any:
    if field.required:
        raise msgspec.ValidationError(f"missing required field `{field.encode_name}`")
    if field.default_factory is not msgspec.NODEFAULT:
        return msgspec.to_builtins(field.default_factory(), enc_hook=_encode_days)
    return msgspec.to_builtins(field.default, enc_hook=_encode_days)


# The alerts of a commit, in order: ARGV = maxlen, fields per entry, then each entry's
# field/value pairs; each is an ``XADD key MAXLEN ~ maxlen * field value ...``.
_APPEND_ENTRIES = """
local step = tonumber(ARGV[2]) * 2
for i = 3, #ARGV, step do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i, i + step - 1))
end
return (#ARGV - 2) / step
"""

# Tries of a whole batch before it is split up (see ``StateStore.apply_many``).
_BATCH_ATTEMPTS = 2


@dataclass(frozen=True)
class Evaluation(Generic[S]):
    """The detectors' verdict on one snapshot: the next state and what changed."""

    state: S
    transitions: list[AlertTransition] = field(default_factory=list)


# One state's step: the current state (None if there is none yet) -> its evaluation.
Step = Callable[[S | None], Evaluation[S] | None]
# What else a commit writes in its MULTI: (pipeline, the states committed, their version).
OnCommit = Callable[[Pipeline, Mapping[str, S], str], Awaitable[None]]


def fold(state: S | None, steps: Iterable[Step[S]]) -> Evaluation[S] | None:
    """Several steps in order, as one: the last state and every transition on the way;
    None if none of them changed anything."""
    current, changed = state, False
    transitions: list[AlertTransition] = []
    for step in steps:
        result = step(current)
        if result is None:
            continue
        current, changed = result.state, True
        transitions += result.transitions
    if not changed or current is None:
        return None
    return Evaluation(current, transitions)


class StateStore(Generic[S]):
    """Reads, evaluates and writes one state atomically; ``namespace`` names its keys."""

    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        model: type[S],
        namespace: str,
        *,
        on_commit: OnCommit[S] | None = None,
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._codec: StateCodec[S] = StateCodec(model)
        self._namespace = namespace
        self._on_commit: OnCommit[S] | None = on_commit
        self._append = redis.register_script(_APPEND_ENTRIES)

    def key(self, state_id: str) -> str:
        return self._streams.keyspace.state_key(self._namespace, state_id)

    def versions_key(self, shard: int) -> str:
        """The hash of state id -> a token that changes with every commit of that state:
        readers that keep figures per state (the status list) re-read only what changed."""
        return self._streams.keyspace.versions_key(self._namespace, shard)

    async def load(self, state_id: str) -> S | None:
        raw = await self._redis.get(self.key(state_id))
        return self._decode(state_id, raw)

    async def apply(self, state_id: str, evaluate: Step[S]) -> list[AlertTransition]:
        """Run ``evaluate`` on the current state and commit its result with its transitions.

        ``evaluate`` returns None when the snapshot changes nothing (a duplicate or an older
        one). On a concurrent write by another replica the whole step is retried.
        """
        return await self.apply_many({state_id: evaluate})

    async def apply_many(self, steps: Mapping[str, Step[S]]) -> list[AlertTransition]:
        """``apply`` for many states at once: one read, one transaction, one round of writes.

        All keys are watched together, so a batch commits whole or not at all. A batch that
        keeps colliding with another replica is split into single states, which then retry
        on their own: one hot account cannot hold up the rest.
        """
        if not steps:
            return []
        # A transaction stays in one shard (one Cluster slot); a mixed batch commits per shard.
        shards: dict[int, dict[str, Step[S]]] = {}
        for state_id, step in steps.items():
            shards.setdefault(self._streams.keyspace.shard_of(state_id), {})[state_id] = step
        if len(shards) > 1:
            return [t for part in shards.values() for t in await self.apply_many(part)]
        try:
            return await self._commit(steps, attempts=None if len(steps) == 1 else _BATCH_ATTEMPTS)
        except WatchError:
            pass
        transitions: list[AlertTransition] = []
        for state_id, step in steps.items():
            transitions += await self.apply_many({state_id: step})
        return transitions

    async def _commit(
        self, steps: Mapping[str, Step[S]], *, attempts: int | None
    ) -> list[AlertTransition]:
        ids = list(steps)
        keys = [self.key(state_id) for state_id in ids]
        shard = self._streams.keyspace.shard_of(ids[0])

        async def decide(pipe: Pipeline) -> Decision[list[AlertTransition]]:
            raws = await pipe.mget(keys)
            results: list[tuple[str, str, Evaluation[S]]] = []
            for state_id, key, raw in zip(ids, keys, raws, strict=True):
                result = steps[state_id](self._decode(state_id, raw))
                if result is not None:
                    results.append((state_id, key, result))
            transitions = [t for _, _, result in results for t in result.transitions]

            async def writes(pipe: Pipeline) -> None:
                await self._queue(pipe, shard, results, transitions)

            return Decision(transitions, writes if results else None)

        return await commit(
            self._redis,
            keys,
            decide,
            attempts=attempts,
            on_conflict=metrics.STATE_CONFLICTS.inc,
        )

    async def _queue(
        self,
        pipe: Pipeline,
        shard: int,
        results: list[tuple[str, str, Evaluation[S]]],
        transitions: list[AlertTransition],
    ) -> None:
        """A commit's writes, into its MULTI: the states, their versions, the alerts."""
        pipe.mset({key: encode_state(result.state) for _, key, result in results})
        # One token per commit: every state it writes gets a version no reader has seen.
        token = secrets.token_hex(8)
        pipe.hset(
            self.versions_key(shard), mapping=dict.fromkeys((i for i, _, _ in results), token)
        )
        if self._on_commit is not None:  # e.g. the status list's rows (detect/list_row.py)
            await self._on_commit(pipe, {i: result.state for i, _, result in results}, token)
        if not transitions:
            return
        fields: list[EncodableT] = []
        for transition in transitions:
            entry = await stream_entry(transition.to_json(), transition.transition_id)
            fields += [part for pair in entry.items() for part in pair]
        # One script call appends them all, each as its own XADD (MAXLEN ~): a command in a
        # transaction costs redis-py ~15 us of Python (packing it, reading its reply), and
        # a batch of 500 snapshots may bring hundreds of alerts. Every entry has the fields
        # ``stream_entry`` gives (one, the envelope), so the script steps by their count.
        await self._append(
            keys=[self._streams.keyspace.alert_stream(shard)],
            args=[self._streams.maxlen, len(fields) // 2 // len(transitions), *fields],
            client=pipe,
        )

    def _decode(self, state_id: str, raw: bytes | str | None) -> S | None:
        if raw is None:
            return None
        try:
            return self._codec.decode(raw)
        except msgspec.DecodeError:
            # Starting over re-arms the alerts for this account; refusing to go on would
            # silence it for good, which is worse.
            log.error("state.corrupt", state_id=state_id, key=self.key(state_id))
            metrics.STATE_CORRUPT.inc()
            return None
