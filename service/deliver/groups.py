"""Alert groups: what waits to be sent to one receiver, and when it is due.

A group is (receiver, route, group labels). A transition routed to a receiver joins its group
(once: a redelivered stream entry finds its ``routed`` mark and changes nothing). A new group
is due ``group_wait`` after its first transition; later transitions wait until
``group_interval`` after the last message; alerts still firing are sent again every
``repeat_interval``. Quiet hours hold back non-critical transitions until they end; an
inhibited alert (``inhibit.py``) is held, recorded once as ``inhibited``, left out of repeats,
and goes out at the first flush after its source resolved. Should it resolve while still held,
neither its firing nor its resolution is sent (the receiver never heard of it).

Flushing a due group turns what it holds into deliveries, in the same MULTI as clearing
them, so a crash leaves either the group or the deliveries, never neither and never both.
A transition for a one-alert-per-delivery receiver (a webhook, an incident tool) on a route
with ``group_wait`` and ``group_interval`` 0, not held by quiet hours or inhibition, whose
group holds nothing else, is *sent on joining*: the join script makes its delivery and
updates the group as that flush would, in the same script (the flusher's round, its reads
and its WATCH/MULTI were a quarter of the CPU per webhook under load, and a hop of latency).
Due groups are flushed up to ``FLUSHED_TOGETHER`` in one WATCH/MULTI (one by one when a
transition joins one of them meanwhile).
A Slack or email message lists the whole batch; a webhook gets one delivery per transition
(the signed body carries one transition: the public contract).

Keys (under the stream prefix): ``group:<id>`` (meta, last_sent_at, seq), ``group:<id>:
pending`` (transition id -> transition), ``group:<id>:firing`` (alert id -> transition, the
alerts a repeat lists), ``groups:due`` (id -> due time), ``routed:<receiver>:<transition>``.

Usage::

    await groups.add(target, labels, transition, now=now, notify=True)
    created = await groups.flush_due(now)          # ids of the deliveries it made
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, cast

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import WatchError

from config.notify import MuteTimeInterval
from config.redis_text import decoded
from config.settings import StreamSettings
from service import metrics
from service.deliver.clock import from_epoch, to_epoch
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.inhibit import RECHECK, FiringSources, Inhibition, Inhibitor
from service.deliver.quiet_hours import muted_until
from service.deliver.receivers import ONE_ALERT_PER_DELIVERY
from service.deliver.routing import RouteTarget
from service.optimistic import Decision, commit
from service.slot_owner import slot_owner
from service.write_batch import WriteBatch
from workers.contract.alerts import AlertTransition

__all__ = ["AddResult", "GroupStore", "Join", "Joined"]

log = structlog.get_logger(__name__)

# "sent": joined and its delivery made at once (see the module docstring).
AddResult = Literal["added", "sent", "duplicate", "quiet", "unheard"]

# Due groups read per page, and flushed side by side: their round trips overlap instead of
# adding up. A flush holds its WATCH connection while it reads through a second one, so
# those at once stay well under the pool (``PIPELINE_CONNECTIONS``), or they would take
# every connection and wait for a second one forever.
FLUSH_PAGE = 100
FLUSHING_AT_ONCE = 16
# Due groups flushed in one WATCH/MULTI (one by one again if a transition joins one of them
# between the reads and the EXEC).
FLUSHED_TOGETHER = 20

# One group as read: its due time, head, pending and firing rows.
_Rows = tuple[float | None, dict[Any, Any], dict[Any, Any], dict[Any, Any]]

# The longest a batch's joins wait for ``streams.wait_replicas`` replicas: past it (a replica
# down or far behind) delivery goes on without them rather than stop.
JOIN_WAIT_MS = 1000

# Far longer than an entry can stay pending on the alerts stream.
_ROUTED_TTL_S = 400 * 24 * 3600

# Join a group once per (receiver, transition); schedule the group, or send at once. See the
# module docstring. One call takes a batch of joins, in order, after the deliveries' due and
# history keys, the history's start and the lease of what is sent at once ('' for none):
# 7 keys and 14 arguments each (one call per join cost redis-py a reply of its own to read
# and check, ~20 us). A join sent at once has its delivery document in ARGV[a + 13] ('' for
# any other) and writes what ``_queue_flush`` would for a flush of that one transition; its
# delivery is due at once, or leased to the caller, whose sender has it in hand. One made
# before (a join whose routed mark was lost) stays as it is: 'duplicate'.
_ADD = """
local sent = false
local function deliver(k, a)
  local now = tonumber(ARGV[a + 5])
  local made = redis.call('SET', KEYS[k + 7], ARGV[a + 13], 'NX')
  local due = now
  if made and ARGV[2] ~= '' then due = tonumber(ARGV[2]) end
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[a + 12])
  redis.call('ZADD', KEYS[1], 'NX', due, ARGV[a + 12])
  if redis.call('HLEN', KEYS[k + 4]) > 0 then
    redis.call('HSET', KEYS[k + 2], 'last_sent_at', ARGV[a + 5])
    redis.call('HINCRBY', KEYS[k + 2], 'seq', 1)
    redis.call('ZADD', KEYS[k + 5], now + tonumber(ARGV[a + 14]), ARGV[a + 8])
  else
    redis.call('DEL', KEYS[k + 2], KEYS[k + 3], KEYS[k + 4])
    redis.call('ZREM', KEYS[k + 5], ARGV[a + 8])
  end
  sent = true
  if made then return 'sent' end
  return 'duplicate'
end
local function at_once(k, a)
  return ARGV[a + 13] ~= '' and redis.call('HLEN', KEYS[k + 3]) == 0
end
local function add(k, a)
  if not redis.call('SET', KEYS[k + 1], '1', 'NX', 'EX', tonumber(ARGV[a + 10])) then
    return 'duplicate'
  end
  redis.call('HSET', KEYS[k + 2], 'meta', ARGV[a + 11])
  if ARGV[a + 3] == 'firing' then
    if ARGV[a + 9] ~= 'notify' then return 'quiet' end
    local early = redis.call('GET', KEYS[k + 6])
    if early then
      -- Its resolved transition came first (a peer reclaimed the firing's stream entry late):
      -- the receiver gets both, and the alert is not left firing in the group.
      redis.call('DEL', KEYS[k + 6])
      redis.call('HSET', KEYS[k + 3], ARGV[a + 1], ARGV[a + 4])
      redis.call('HSET', KEYS[k + 3], ARGV[a + 2] .. ':resolved', early)
    else
      redis.call('HSET', KEYS[k + 4], ARGV[a + 2], ARGV[a + 4])
      if at_once(k, a) then return deliver(k, a) end
      redis.call('HSET', KEYS[k + 3], ARGV[a + 1], ARGV[a + 4])
    end
  else
    local heard = redis.call('HDEL', KEYS[k + 4], ARGV[a + 2])
    if ARGV[a + 9] ~= 'notify' then return 'quiet' end
    if heard == 0 then
      -- Not told of the firing (yet): kept a day, in case the firing is only late.
      redis.call('SET', KEYS[k + 6], ARGV[a + 4], 'EX', 86400)
      return 'unheard'
    end
    if at_once(k, a) then return deliver(k, a) end
    redis.call('HSET', KEYS[k + 3], ARGV[a + 1], ARGV[a + 4])
  end
  local now = tonumber(ARGV[a + 5])
  local last = redis.call('HGET', KEYS[k + 2], 'last_sent_at')
  local due
  if last then
    due = math.max(now, tonumber(last) + tonumber(ARGV[a + 7]))
  else
    local first = redis.call('HGET', KEYS[k + 2], 'first_at')
    if not first then
      redis.call('HSET', KEYS[k + 2], 'first_at', ARGV[a + 5])
      first = ARGV[a + 5]
    end
    due = tonumber(first) + tonumber(ARGV[a + 6])
  end
  local current = redis.call('ZSCORE', KEYS[k + 5], ARGV[a + 8])
  if (not current) or tonumber(current) > due then
    redis.call('ZADD', KEYS[k + 5], due, ARGV[a + 8])
  end
  return 'added'
end
local out = {}
for i = 0, (#KEYS - 2) / 7 - 1 do out[i + 1] = add(2 + 7 * i, 2 + 14 * i) end
if sent then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
return out
"""


# Each group's due time, head, pending and firing rows (flat field, value lists), in one
# call: read one by one in a pipeline, the replies cost redis-py more than Redis.
_READ = """
local out = {}
for i, gid in ipairs(ARGV) do
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], gid)
  for k = 3 * i - 1, 3 * i + 1 do out[#out + 1] = redis.call('HGETALL', KEYS[k]) end
end
return out
"""


@dataclass(eq=False, slots=True)
class GroupStore:
    redis: Redis
    streams: StreamSettings
    deliveries: DeliveryStore
    _: KW_ONLY
    receiver_kinds: Mapping[str, str]
    mute_intervals: Callable[[str], MuteTimeInterval | None]
    inhibitor: Inhibitor | None = None
    due_key: str = field(init=False)
    _add: AsyncScript = field(init=False, repr=False)
    _read_groups: AsyncScript = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._add = self.redis.register_script(_ADD)
        self._read_groups = self.redis.register_script(_READ)
        self.due_key = self.streams.keyspace.groups_due()

    def _keys(self, gid: str) -> tuple[str, str, str]:
        return self.streams.keyspace.group(gid)

    async def add(
        self,
        target: RouteTarget,
        labels: dict[str, str],
        transition: AlertTransition,
        *,
        now: datetime,
        notify: bool,
    ) -> AddResult:
        """Join the group; ``notify`` False records the alert's state without sending it."""
        ((result, _),) = await self.add_many([Join(target, labels, transition, notify, now)])
        return result

    async def add_many(
        self, joins: Sequence[Join], *, leased_until: datetime | None = None
    ) -> list[Joined]:
        """``add`` each, in order, in one script call (a notifier's batch). With
        ``leased_until`` the deliveries sent at once are leased to the caller until then (its
        sender takes them from the result) instead of queued as due."""
        if not joins:
            return []
        # Every group key is in one slot ({g} on a Cluster): one script call on its master.
        owner = await slot_owner(self.redis, self.streams.keyspace.slot_key())
        now = max(join.at for join in joins)
        keys: list[str] = [self.deliveries.due_key, self.deliveries.index_key]
        args: list[Any] = [
            repr(to_epoch(self.deliveries.history_start(now))),
            repr(to_epoch(leased_until)) if leased_until is not None else "",
        ]
        made: list[Delivery | None] = []
        for join, at_once in zip(joins, await self._sent_at_once(joins), strict=True):
            delivery = (
                self._one_alert(join.target.receiver, join.transition, join.at) if at_once else None
            )
            join_keys, join_args = self._add_call(join, delivery)
            keys += join_keys
            args += join_args
            made.append(delivery)
        if self.streams.wait_replicas:
            # On the script's own connection: WAIT counts the replicas that have its writes.
            async with owner.pipeline(transaction=False) as pipe:
                await self._add(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self.streams.wait_replicas, JOIN_WAIT_MS)
                results, reached = await pipe.execute()
            if reached < self.streams.wait_replicas:
                log.warning("groups.joins_not_replicated", replicas=reached)
        else:
            results = await self._add(keys=keys, args=args, client=owner)
        # The script returns one of AddResult per join.
        return [
            Joined(result, delivery if result == "sent" else None)
            for result, delivery in zip(
                (cast("AddResult", decoded(r)) for r in results), made, strict=True
            )
        ]

    async def _sent_at_once(self, joins: Sequence[Join]) -> list[bool]:
        """Per join, whether to send it on joining if its group holds nothing else (the script
        looks): a one-alert-per-delivery receiver, no wait on the route, no quiet hours now,
        not inhibited now. Any other goes through a flush, which holds or groups it."""
        at_once = [
            join.notify
            and self.receiver_kinds.get(join.target.receiver) in ONE_ALERT_PER_DELIVERY
            and not join.target.group_wait
            and not join.target.group_interval
            and muted_until(self._mutes(join.target.mute_time_intervals), join.at) is None
            for join in joins
        ]
        if any(at_once) and self.inhibitor is not None and self.inhibitor.active:
            muted = await self.inhibitor.muted(
                [join.transition for join, wanted in zip(joins, at_once, strict=True) if wanted]
            )
            at_once = [
                wanted and join.transition.alert_id not in muted
                for join, wanted in zip(joins, at_once, strict=True)
            ]
        return at_once

    def _mutes(self, names: Sequence[str]) -> list[MuteTimeInterval]:
        return [m for n in names if (m := self.mute_intervals(n))]

    def _add_call(self, join: Join, delivery: Delivery | None) -> tuple[list[str], list[Any]]:
        """The script's keys and arguments for one join; ``delivery`` is the one it makes
        when sent at once."""
        target, transition = join.target, join.transition
        gid = target.group_id(join.labels)
        group, pending, firing = self._keys(gid)
        meta = {
            "receiver": target.receiver,
            "path": target.path,
            "labels": target.group_labels(join.labels),
            "repeat_s": target.repeat_interval.total_seconds(),
            "interval_s": target.group_interval.total_seconds(),
            "mutes": list(target.mute_time_intervals),
        }
        seen = self.streams.keyspace.routed(target.receiver, transition.transition_id)
        early = self.streams.keyspace.early_resolved(target.receiver, transition.alert_id)
        delivery_id = delivery.id if delivery is not None else ""
        keys = [seen, group, pending, firing, self.due_key, early, self.deliveries.key(delivery_id)]
        args = [
            transition.transition_id,
            transition.alert_id,
            transition.status,
            transition.model_dump_json(),
            repr(to_epoch(join.at)),
            repr(target.group_wait.total_seconds()),
            repr(target.group_interval.total_seconds()),
            gid,
            "notify" if join.notify else "quiet",
            _ROUTED_TTL_S,
            json.dumps(meta),
            delivery_id,
            delivery.model_dump_json() if delivery is not None else "",
            repr(target.repeat_interval.total_seconds()),
        ]
        return keys, args

    async def wake(self, gids: list[str], now: datetime) -> None:
        """Make these (existing) groups due now: a source that muted them resolved."""
        if gids:
            await self.redis.zadd(self.due_key, dict.fromkeys(gids, to_epoch(now)), xx=True)

    async def due(self, now: datetime, limit: int = 100) -> list[str]:
        ids = await self.redis.zrangebyscore(self.due_key, "-inf", to_epoch(now), 0, limit)
        return [decoded(i) for i in ids]

    async def flush_due(self, now: datetime, *, pages: int = 10) -> list[str]:
        """Flush the due groups, a page of them side by side (each is its own WATCH/MULTI,
        as if flushed by a replica of its own), up to ``pages`` pages; returns the
        deliveries created."""
        created: list[str] = []
        side_by_side = asyncio.Semaphore(FLUSHING_AT_ONCE)

        async def flush(gids: list[str]) -> list[str]:
            async with side_by_side:
                try:
                    return await self._flush_together(gids, now)
                except WatchError:
                    # One of them changed meanwhile (a transition joined it): one by one.
                    return [d for gid in gids for d in await self.flush(gid, now)]

        for _ in range(pages):
            due = await self.due(now, FLUSH_PAGE)
            chunks = [due[i : i + FLUSHED_TOGETHER] for i in range(0, len(due), FLUSHED_TOGETHER)]
            for made in await asyncio.gather(*(flush(chunk) for chunk in chunks)):
                created.extend(made)
            if len(due) < FLUSH_PAGE:
                break
        return created

    async def flush(self, gid: str, now: datetime) -> list[str]:
        """Send what group ``gid`` holds if it is due; returns the deliveries created."""
        return await self._flush_together([gid], now, attempts=None)

    async def _flush_together(
        self, gids: Sequence[str], now: datetime, *, attempts: int | None = 1
    ) -> list[str]:
        """Flush the due ones among ``gids`` in one WATCH/MULTI, tried ``attempts`` times
        (None: until it commits); WatchError if any of them changed between the reads and
        the EXEC every time (then nothing was written)."""

        async def decide(pipe: Pipeline) -> Decision[list[_Step]]:
            # Read in one round trip, on another connection: a change after the WATCH still
            # fails the EXEC, whichever connection read.
            rows, sources = await self._read(gids)
            steps: list[_Step] = []
            for gid, (due, head_rows, pending_rows, firing_rows) in zip(gids, rows, strict=True):
                if due is None or due > to_epoch(now):
                    continue
                head = {decoded(k): decoded(v) for k, v in head_rows.items()}
                pending = _transitions(pending_rows)
                firing = _transitions(firing_rows)
                muted = (
                    await self.inhibitor.muted(
                        [*pending.values(), *firing.values()], sources=sources
                    )
                    if self.inhibitor is not None
                    else {}
                )
                plan = self._plan(gid, head, pending, firing, now, muted=muted)
                # An alert held over several flushes is recorded (and counted) once.
                records = [d for d in plan.inhibited if not await self._recorded(d)]
                steps.append(_Step(gid, due, plan, records))

            async def writes(pipe: Pipeline) -> None:
                batch = WriteBatch()
                for step in steps:
                    self._queue_flush(batch, step, now)
                # Once for the deliveries of every group here (all made at ``now``).
                self.deliveries.trim_history(batch, now)
                await batch.queue_on(pipe)

            return Decision(steps, writes if steps else None)

        keys = [key for gid in gids for key in self._keys(gid)]
        steps = await commit(self.redis, keys, decide, attempts=attempts)
        for step in steps:
            for record in step.records:
                metrics.DELIVERIES.labels(receiver=record.receiver, outcome="inhibited").inc()
        return [d.id for step in steps for d in step.plan.deliveries]

    def _queue_flush(self, batch: WriteBatch, step: _Step, now: datetime) -> None:
        """The writes of one group's flush, into a batch for the MULTI. Its deliveries are queued
        as due when the group was (not later), so the sender takes the messages of groups
        flushed together in the order their transitions came."""
        gid, plan = step.gid, step.plan
        group, pending_key, firing_key = self._keys(gid)
        for delivery in plan.deliveries + step.records:
            self.deliveries.queue(batch, delivery, due=from_epoch(step.due), trim=False)
        if plan.inhibited and self.inhibitor is not None:
            batch.sadd(self.inhibitor.holding_key, gid)
        if plan.sent:
            batch.hdel(pending_key, *plan.sent)
        if plan.deliveries:
            # The group is watched: its seq as read is the one this flush follows.
            batch.hset(group, mapping={"last_sent_at": repr(to_epoch(now)), "seq": plan.seq})
        if plan.next_due is not None:
            batch.zadd(self.due_key, {gid: to_epoch(plan.next_due)})
        else:
            batch.zrem(self.due_key, gid)
        if plan.finished:
            batch.delete(group, pending_key, firing_key)

    async def _read(self, gids: Sequence[str]) -> tuple[list[_Rows], FiringSources | None]:
        """Each group's due time, head, pending and firing rows; the inhibition sources."""
        inhibitor = self.inhibitor if self.inhibitor and self.inhibitor.active else None
        owner = await slot_owner(self.redis, self.streams.keyspace.slot_key())
        keys = [self.due_key, *(key for gid in gids for key in self._keys(gid))]
        async with owner.pipeline(transaction=False) as read:
            await self._read_groups(keys=keys, args=list(gids), client=read)
            if inhibitor is not None:
                read.hgetall(inhibitor.sources_key)
            replies = await read.execute()
        sources = inhibitor.firing(replies[-1]) if inhibitor is not None else None
        rows: list[_Rows] = []
        groups = replies[0]
        for start in range(0, 4 * len(gids), 4):
            due, head, pending, firing = groups[start : start + 4]
            hashes = _pairs(head), _pairs(pending), _pairs(firing)
            rows.append((None if due is None else float(due), *hashes))
        return rows, sources

    async def _recorded(self, delivery: Delivery) -> bool:
        return bool(await self.redis.exists(self.deliveries.key(delivery.id)))

    def _plan(
        self,
        gid: str,
        head: dict[str, str],
        pending: dict[str, AlertTransition],
        firing: dict[str, AlertTransition],
        now: datetime,
        *,
        muted: Mapping[str, Inhibition],
    ) -> _Plan:
        meta = json.loads(head.get("meta", "{}"))
        receiver = str(meta.get("receiver", ""))
        seq = int(head.get("seq", "0")) + 1
        last_sent = from_epoch(float(head["last_sent_at"])) if "last_sent_at" in head else None
        repeat_every = timedelta(seconds=float(meta.get("repeat_s", 86400)))
        quiet_until = muted_until(self._mutes(meta.get("mutes", [])), now)

        to_send, inhibited, dropped = _inhibit(list(pending.values()), muted)
        held: list[AlertTransition] = []
        if quiet_until is not None:
            held = [t for t in to_send if t.severity != "critical"]
            to_send = [t for t in to_send if t.severity == "critical"]
        repeat = False
        repeat_due = (
            not to_send
            and not held
            and firing
            and last_sent is not None
            and now >= last_sent + repeat_every
            and quiet_until is None
        )
        if repeat_due:
            unmuted = [t for t in firing.values() if t.alert_id not in muted]
            to_send, repeat = sorted(unmuted, key=lambda t: t.starts_at), True

        deliveries = self._deliveries_for(receiver, gid, seq, to_send, repeat=repeat, now=now)
        sent_at = now if deliveries else last_sent
        next_due: datetime | None = None
        if held:
            next_due = quiet_until
        elif firing and sent_at is not None:
            next_due = sent_at + repeat_every
            if next_due <= now:  # a repeat was due and every alert in it is muted
                next_due = now + repeat_every
            if quiet_until is not None and next_due < quiet_until:
                next_due = quiet_until
        if inhibited:
            recheck = now + max(RECHECK, timedelta(seconds=float(meta.get("interval_s", 0))))
            next_due = recheck if next_due is None else min(next_due, recheck)
        finished = not firing and not held and not inhibited
        sent = ([t.transition_id for t in to_send] if not repeat else []) + dropped
        records = [
            Delivery.new(
                delivery_id=f"{receiver}:{t.transition_id}:inhibited",
                receiver=receiver,
                transitions=[t],
                now=now,
                status="inhibited",
                note=why.note(),
            )
            for t, why in inhibited
        ]
        return _Plan(deliveries, sent, next_due, finished, records, seq)

    def _deliveries_for(
        self,
        receiver: str,
        gid: str,
        seq: int,
        transitions: list[AlertTransition],
        *,
        repeat: bool,
        now: datetime,
    ) -> list[Delivery]:
        if not transitions:
            return []
        transitions = sorted(
            transitions, key=lambda t: (t.observed_at, t.advertiser_id, t.transition_id)
        )
        if self.receiver_kinds.get(receiver) in ONE_ALERT_PER_DELIVERY:
            return [
                self._one_alert(receiver, t, now, repeat_seq=seq if repeat else None)
                for t in transitions
            ]
        return [
            Delivery.new(
                delivery_id=f"{receiver}:{gid}:{seq}",
                receiver=receiver,
                transitions=transitions,
                now=now,
                repeat=repeat,
            )
        ]

    @staticmethod
    def _one_alert(
        receiver: str, transition: AlertTransition, now: datetime, *, repeat_seq: int | None = None
    ) -> Delivery:
        """The delivery of one transition (a webhook's, an incident tool's); a repeat's id
        carries the group's message count, so each reminder is a message of its own."""
        suffix = f":repeat-{repeat_seq}" if repeat_seq is not None else ""
        return Delivery.new(
            delivery_id=f"{receiver}:{transition.transition_id}{suffix}",
            receiver=receiver,
            transitions=[transition],
            now=now,
            repeat=repeat_seq is not None,
        )


class Joined(NamedTuple):
    """What one join did, and the delivery it made when it was sent at once."""

    result: AddResult
    delivery: Delivery | None


@dataclass(frozen=True)
class Join:
    """One transition joining one receiver's group; ``notify`` False records it quietly."""

    target: RouteTarget
    labels: dict[str, str]
    transition: AlertTransition
    notify: bool
    at: datetime  # when it was routed: a new group is due group_wait after its first


@dataclass(frozen=True)
class _Step:
    """One due group of a flush: its id, when it was due, its plan, its inhibition records."""

    gid: str
    due: float
    plan: _Plan
    records: list[Delivery]


@dataclass(frozen=True)
class _Plan:
    """What one flush does: deliveries to create, pending entries they carry, next due time."""

    deliveries: list[Delivery]
    sent: list[str]
    next_due: datetime | None
    finished: bool
    inhibited: list[Delivery]  # the records of alerts held by inhibition (created once)
    seq: int  # the group's message count once these deliveries are made


def _inhibit(
    pending: list[AlertTransition], muted: Mapping[str, Inhibition]
) -> tuple[list[AlertTransition], list[tuple[AlertTransition, Inhibition]], list[str]]:
    """Split pending transitions: (to send, muted firings held with why, dropped ids).

    A muted firing whose resolution is pending too is dropped with it: its episode ended
    before anyone was told. A resolution whose firing went out earlier is sent.
    """
    held_ids = {t.alert_id for t in pending if t.status == "firing" and t.alert_id in muted}
    ended = {t.alert_id for t in pending if t.status == "resolved"}
    to_send: list[AlertTransition] = []
    held: list[tuple[AlertTransition, Inhibition]] = []
    dropped: list[str] = []
    for transition in pending:
        if transition.alert_id not in held_ids:
            to_send.append(transition)
        elif transition.alert_id in ended:
            dropped.append(transition.transition_id)
        else:
            held.append((transition, muted[transition.alert_id]))
    return to_send, held, dropped


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """A hash as HGETALL gives it to a script (field, value, field, value ...)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _transitions(rows: dict[Any, Any]) -> dict[str, AlertTransition]:
    return {decoded(k): AlertTransition.model_validate_json(v) for k, v in rows.items()}
