"""Alert groups: what waits to be sent to one receiver, and when it is due.

A group is (receiver, route, group labels). A transition routed to a receiver joins its group
(once: a redelivered stream entry finds its ``routed`` mark and changes nothing). A new group
is due ``group_wait`` after its first transition; later transitions wait until
``group_interval`` after the last message; alerts still firing are sent again every
``repeat_interval``. Quiet hours hold back non-critical transitions until they end.

Flushing a due group turns what it holds into deliveries, in the same MULTI as clearing
them, so a crash leaves either the group or the deliveries, never neither and never both.
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

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from config.notify import MuteTimeInterval
from config.settings import StreamSettings
from service.alerts import AlertTransition
from service.deliver.clock import from_epoch, to_epoch
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.quiet_hours import muted_until
from service.deliver.routing import RouteTarget

__all__ = ["AddResult", "GroupStore"]

log = structlog.get_logger(__name__)

AddResult = Literal["added", "duplicate", "quiet", "unheard"]

# Far longer than an entry can stay pending on the alerts stream.
_ROUTED_TTL_S = 400 * 24 * 3600

# Join a group once per (receiver, transition); schedule the group. See the module docstring.
_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[10])) then
  return 'duplicate'
end
redis.call('HSET', KEYS[2], 'meta', ARGV[11])
if ARGV[3] == 'firing' then
  if ARGV[9] ~= 'notify' then return 'quiet' end
  local early = redis.call('GET', KEYS[6])
  if early then
    -- Its resolved transition came first (a peer reclaimed the firing's stream entry late):
    -- the receiver gets both, and the alert is not left firing in the group.
    redis.call('DEL', KEYS[6])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
    redis.call('HSET', KEYS[3], ARGV[2] .. ':resolved', early)
  else
    redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  end
else
  local heard = redis.call('HDEL', KEYS[4], ARGV[2])
  if ARGV[9] ~= 'notify' then return 'quiet' end
  if heard == 0 then
    -- Not told of the firing (yet): kept a day, in case the firing is only late.
    redis.call('SET', KEYS[6], ARGV[4], 'EX', 86400)
    return 'unheard'
  end
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
local now = tonumber(ARGV[5])
local last = redis.call('HGET', KEYS[2], 'last_sent_at')
local due
if last then
  due = math.max(now, tonumber(last) + tonumber(ARGV[7]))
else
  local first = redis.call('HGET', KEYS[2], 'first_at')
  if not first then
    redis.call('HSET', KEYS[2], 'first_at', ARGV[5])
    first = ARGV[5]
  end
  due = tonumber(first) + tonumber(ARGV[6])
end
local current = redis.call('ZSCORE', KEYS[5], ARGV[8])
if (not current) or tonumber(current) > due then
  redis.call('ZADD', KEYS[5], due, ARGV[8])
end
return 'added'
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GroupStore:
    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        deliveries: DeliveryStore,
        *,
        receiver_kinds: Mapping[str, str],
        mute_intervals: Callable[[str], MuteTimeInterval | None],
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._deliveries = deliveries
        self._receiver_kinds = receiver_kinds
        self._mute_intervals = mute_intervals
        self._add = redis.register_script(_ADD)
        self.due_key = streams.key("groups", "due")

    def _keys(self, gid: str) -> tuple[str, str, str]:
        base = self._streams.key("group", gid)
        return base, f"{base}:pending", f"{base}:firing"

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
        gid = target.group_id(labels)
        group, pending, firing = self._keys(gid)
        meta = {
            "receiver": target.receiver,
            "path": target.path,
            "labels": target.group_labels(labels),
            "repeat_s": target.repeat_interval.total_seconds(),
            "interval_s": target.group_interval.total_seconds(),
            "mutes": list(target.mute_time_intervals),
        }
        seen = self._streams.key("routed", target.receiver, transition.transition_id)
        early = self._streams.key("early-resolved", target.receiver, transition.alert_id)
        result = await self._add(
            keys=[seen, group, pending, firing, self.due_key, early],
            args=[
                transition.transition_id,
                transition.alert_id,
                transition.status,
                transition.model_dump_json(),
                repr(to_epoch(now)),
                repr(target.group_wait.total_seconds()),
                repr(target.group_interval.total_seconds()),
                gid,
                "notify" if notify else "quiet",
                _ROUTED_TTL_S,
                json.dumps(meta),
            ],
        )
        return _text(result)  # type: ignore[return-value]  # the script returns one of AddResult

    async def due(self, now: datetime, limit: int = 100) -> list[str]:
        ids = await self._redis.zrangebyscore(self.due_key, "-inf", to_epoch(now), 0, limit)
        return [_text(i) for i in ids]

    async def flush_due(self, now: datetime) -> list[str]:
        created: list[str] = []
        for gid in await self.due(now):
            created.extend(await self.flush(gid, now))
        return created

    async def flush(self, gid: str, now: datetime) -> list[str]:
        """Send what group ``gid`` holds if it is due; returns the deliveries created."""
        group, pending_key, firing_key = self._keys(gid)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(group, pending_key, firing_key)
                    due = await pipe.zscore(self.due_key, gid)
                    if due is None or due > to_epoch(now):
                        await pipe.reset()  # type: ignore[no-untyped-call]  # unannotated
                        return []
                    head = {_text(k): _text(v) for k, v in (await pipe.hgetall(group)).items()}
                    pending = _transitions(await pipe.hgetall(pending_key))
                    firing = _transitions(await pipe.hgetall(firing_key))
                    plan = self._plan(gid, head, pending, firing, now)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for delivery in plan.deliveries:
                        self._deliveries.queue(pipe, delivery)
                    if plan.sent:
                        pipe.hdel(pending_key, *plan.sent)
                    if plan.deliveries:
                        pipe.hset(group, mapping={"last_sent_at": repr(to_epoch(now))})
                        pipe.hincrby(group, "seq", 1)
                    if plan.next_due is not None:
                        pipe.zadd(self.due_key, {gid: to_epoch(plan.next_due)})
                    else:
                        pipe.zrem(self.due_key, gid)
                    if plan.finished:
                        pipe.delete(group, pending_key, firing_key)
                    await pipe.execute()
                except WatchError:
                    continue
                return [d.id for d in plan.deliveries]

    def _plan(
        self,
        gid: str,
        head: dict[str, str],
        pending: dict[str, AlertTransition],
        firing: dict[str, AlertTransition],
        now: datetime,
    ) -> _Plan:
        meta = json.loads(head.get("meta", "{}"))
        receiver = str(meta.get("receiver", ""))
        seq = int(head.get("seq", "0")) + 1
        last_sent = from_epoch(float(head["last_sent_at"])) if "last_sent_at" in head else None
        repeat_every = timedelta(seconds=float(meta.get("repeat_s", 86400)))
        intervals = [m for n in meta.get("mutes", []) if (m := self._mute_intervals(n))]
        quiet_until = muted_until(intervals, now)

        to_send = list(pending.values())
        held: list[AlertTransition] = []
        if quiet_until is not None:
            held = [t for t in to_send if t.severity != "critical"]
            to_send = [t for t in to_send if t.severity == "critical"]
        repeat = False
        if (
            not pending
            and firing
            and last_sent is not None
            and now >= last_sent + repeat_every
            and quiet_until is None
        ):
            to_send, repeat = sorted(firing.values(), key=lambda t: t.starts_at), True

        deliveries = self._deliveries_for(receiver, gid, seq, to_send, repeat=repeat, now=now)
        sent_at = now if deliveries else last_sent
        next_due: datetime | None = None
        if held:
            next_due = quiet_until
        elif firing and sent_at is not None:
            next_due = sent_at + repeat_every
            if quiet_until is not None and next_due < quiet_until:
                next_due = quiet_until
        finished = not firing and not held
        sent = [t.transition_id for t in to_send] if not repeat else []
        return _Plan(deliveries, sent, next_due, finished)

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
        if self._receiver_kinds.get(receiver) == "webhook":
            suffix = f":repeat-{seq}" if repeat else ""
            return [
                Delivery.new(
                    delivery_id=f"{receiver}:{t.transition_id}{suffix}",
                    receiver=receiver,
                    transitions=[t],
                    now=now,
                    repeat=repeat,
                )
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


@dataclass(frozen=True)
class _Plan:
    """What one flush does: deliveries to create, pending entries they carry, next due time."""

    deliveries: list[Delivery]
    sent: list[str]
    next_due: datetime | None
    finished: bool


def _transitions(rows: dict[Any, Any]) -> dict[str, AlertTransition]:
    return {_text(k): AlertTransition.model_validate_json(v) for k, v in rows.items()}
