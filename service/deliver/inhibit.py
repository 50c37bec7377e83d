"""Inhibition (Alertmanager's ``inhibit_rules``): while a source alert fires, targets are muted.

The rules live in ``notify.inhibit_rules`` (plus the built-in ones, see
``NotifySettings.all_inhibit_rules``). Which alerts fire is learnt from the alerts stream as
the notifier reads it: every firing transition that matches some rule's ``source_match`` is
kept in ``<prefix>:inhibit:sources`` (alert id -> labels) until its resolved transition comes.
A flush of an alert group (``GroupStore.flush``) asks which of its firing alerts are muted now:
those are held in the group, recorded once as ``inhibited`` with the rule and the source alert,
and go out at the first flush after the source resolved (groups holding inhibited alerts are
re-checked at least every ``RECHECK``, and at once when a source resolves).

Usage::

    inhibitor = Inhibitor(redis, streams, notify.all_inhibit_rules(), labels=router.labels)
    await inhibitor.observe(transitions)                # the notifier, for every batch
    muted = await inhibitor.muted(transitions)          # alert id -> Inhibition, at a flush
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from redis.asyncio import Redis

from config.matchers import Matcher
from config.notify import InhibitRule
from config.redis_text import decoded
from config.settings import StreamSettings
from service.deliver.routing import matches
from service.slot_owner import slot_owner, transaction
from workers.contract.alerts import AlertTransition

__all__ = [
    "RECHECK",
    "FiringSources",
    "Inhibition",
    "Inhibitor",
    "inhibition_of",
    "side_matches",
    "sources_of",
]

# How often a group holding inhibited alerts looks again, besides the wake-up a resolving
# source gives it (which a flush racing that resolution could miss).
RECHECK = timedelta(minutes=1)
# A resolved source is remembered this long, so that its firing read late (a reclaimed stream
# entry) does not make it fire again for ever.
_ENDED_TTL_S = 86400

# Per source transition (status, alert id, labels; its ``ended`` key): a firing one is kept as
# a source unless it already ended, a resolved one is forgotten and remembered as ended.
_OBSERVE = """
local stopped = 0
for i = 2, #KEYS do
  local a = 3 * (i - 2) + 1
  if ARGV[a + 1] == 'resolved' then
    redis.call('SET', KEYS[i], '1', 'EX', tonumber(ARGV[1]))
    redis.call('HDEL', KEYS[1], ARGV[a + 2])
    stopped = 1
  elseif redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[1], ARGV[a + 2], ARGV[a + 3])
  end
end
return stopped
"""

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Inhibition:
    """Why an alert is muted: the index of the rule and the firing source alert."""

    rule: int
    source_alert_id: str
    source_kind: str

    def note(self) -> str:
        return (
            f"inhibited by rule {self.rule} of notify.inhibit_rules: "
            f"{self.source_kind} {self.source_alert_id} is firing"
        )


def side_matches(rule: InhibitRule, side: Literal["source", "target"], labels: Labels) -> bool:
    """Every condition of one side of ``rule`` holds for ``labels``: globs and matchers."""
    found = dict(labels)
    globs: dict[str, list[str]] = getattr(rule, f"{side}_match")
    matchers: list[Matcher] = getattr(rule, f"{side}_matchers")
    return matches(globs, found) and all(m.matches(found) for m in matchers)


class FiringSources:
    """The firing sources (alert id -> labels) sorted out for a list of rules: per rule, the
    ids of the sources matching its ``source_match``, by the values of its ``equal`` labels,
    in id order. A target then meets only the sources that share its ``equal`` values, where
    matching every source against every target cost a flush of a few hundred groups with a
    few hundred sources firing more than the rest of the flush."""

    def __init__(
        self,
        rules: Sequence[InhibitRule],
        sources: Mapping[str, Labels],
        *,
        previous: FiringSources | None = None,
    ) -> None:
        """``previous``: the sorting of an earlier reading with the same rules, whose
        unchanged sources are not matched against the rules again."""
        self.rules = list(rules)
        self.labels = sources
        # Per source, per rule: its equal labels' values if it matches the source side.
        self._keys: dict[str, list[tuple[str, ...] | None]] = {}
        self._by_rule: list[dict[tuple[str, ...], list[str]]] = [{} for _ in self.rules]
        for source_id in sorted(sources):
            source = sources[source_id]
            keys = None
            if previous is not None and previous.labels.get(source_id) == source:
                keys = previous._keys[source_id]
            if keys is None:
                keys = [
                    _equal_values(rule, source) if side_matches(rule, "source", source) else None
                    for rule in self.rules
                ]
            self._keys[source_id] = keys
            for index, key in enumerate(keys):
                if key is not None:
                    self._by_rule[index].setdefault(key, []).append(source_id)

    def candidates(self, index: int, target: Labels) -> list[str]:
        """The sources of rule ``index`` that share ``target``'s ``equal`` values, by id."""
        return self._by_rule[index].get(_equal_values(self.rules[index], target), [])


def _equal_values(rule: InhibitRule, labels: Labels) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in rule.equal)  # missing = ""


def inhibition_of(
    rules: Sequence[InhibitRule], target: Labels, sources: Mapping[str, Labels] | FiringSources
) -> Inhibition | None:
    """The first (rule, source) that mutes ``target``, or None; ``sources`` are the firing
    alerts by id (or already sorted out for ``rules``). Alertmanager's semantics: the target
    matches ``target_match``, the source ``source_match``, every ``equal`` label has the same
    value on both (missing = ""), and a source that matches both sides does not mute a target
    that matches both."""
    firing = sources if isinstance(sources, FiringSources) else FiringSources(rules, sources)
    for index, rule in enumerate(rules):
        if not side_matches(rule, "target", target):
            continue
        two_sided = side_matches(rule, "source", target)
        for source_id in firing.candidates(index, target):
            source = firing.labels[source_id]
            if two_sided and side_matches(rule, "target", source):
                continue
            return Inhibition(index, source_id, source.get("kind", ""))
    return None


class Inhibitor:
    """The firing sources in Redis, and which alerts they mute."""

    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        rules: Sequence[InhibitRule],
        *,
        labels: Callable[[AlertTransition], dict[str, str]],
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._rules = list(rules)
        self._labels = labels
        self.sources_key = streams.keyspace.inhibit_sources()
        # Groups holding an inhibited alert, flushed at once when a source resolves.
        self.holding_key = streams.keyspace.inhibit_holding()
        self._last: tuple[dict[Any, Any], FiringSources] | None = None
        self._observe = redis.register_script(_OBSERVE)

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def _is_source(self, labels: dict[str, str]) -> bool:
        return any(side_matches(rule, "source", labels) for rule in self._rules)

    def _is_target(self, labels: dict[str, str]) -> bool:
        return any(side_matches(rule, "target", labels) for rule in self._rules)

    async def observe(self, transitions: Sequence[AlertTransition]) -> bool:
        """Track the sources' firings and ends, in order, in one script call (a notifier's
        batch: two round trips per source had the batch wait on them); True when a source
        stopped firing."""
        if not self._rules:
            return False
        keys = [self.sources_key]
        args: list[str] = [str(_ENDED_TTL_S)]
        for transition in transitions:
            labels = self._labels(transition)
            if self._is_source(labels):
                keys.append(self._streams.keyspace.inhibit_ended(transition.alert_id))
                args += [transition.status, transition.alert_id, json.dumps(labels)]
        if len(keys) == 1:
            return False
        owner = await slot_owner(self._redis, self._streams.keyspace.slot_key())
        return bool(await self._observe(keys=keys, args=args, client=owner))

    async def sources(self) -> FiringSources:
        return self.firing(await self._redis.hgetall(self.sources_key))

    def firing(self, rows: dict[Any, Any]) -> FiringSources:
        """The firing sources from the rows of the ``sources_key`` hash, sorted out for the
        rules. Every flush reads the rows: while they are the same as last time (no source
        began or ended since) the last sorting is reused, and when they changed only the rows
        that changed are parsed and matched against the rules again."""
        if self._last is not None and rows == self._last[0]:
            return self._last[1]
        if self._last is None:
            firing = FiringSources(self._rules, sources_of(rows))
        else:
            earlier_rows, previous = self._last
            sources = sources_of(rows, earlier=(earlier_rows, previous.labels))
            firing = FiringSources(self._rules, sources, previous=previous)
        self._last = (rows, firing)
        return firing

    async def muted(
        self,
        transitions: Iterable[AlertTransition],
        *,
        sources: FiringSources | None = None,
    ) -> dict[str, Inhibition]:
        """The firing ones among ``transitions`` that are muted now, by alert id; ``sources``
        if the caller read them already (``firing`` of the ``sources_key`` hash's rows)."""
        # Only alerts some rule could mute make the sources worth reading.
        candidates = [
            (transition, labels)
            for transition in transitions
            if transition.status == "firing" and self._is_target(labels := self._labels(transition))
        ]
        if not candidates:
            return {}
        if sources is None:
            sources = await self.sources()
        out: dict[str, Inhibition] = {}
        for transition, labels in candidates:
            found = inhibition_of(self._rules, labels, sources) if sources.labels else None
            if found is not None:
                out[transition.alert_id] = found
        return out

    async def holding(self) -> list[str]:
        """The groups to flush now that a source resolved (and forget)."""
        async with transaction(self._redis, self._streams.keyspace.slot_key()) as pipe:
            pipe.smembers(self.holding_key)
            pipe.delete(self.holding_key)
            members, _ = await pipe.execute()
        return sorted(decoded(m) for m in members)


def sources_of(
    rows: dict[Any, Any],
    *,
    earlier: tuple[dict[Any, Any], Mapping[str, Labels]] | None = None,
) -> dict[str, Labels]:
    """The firing sources (alert id -> labels) from the rows of the ``sources_key`` hash;
    with ``earlier`` (rows read before, and what they gave), an unchanged row keeps what it
    gave then rather than being parsed again."""
    out: dict[str, Labels] = {}
    earlier_rows, earlier_sources = earlier if earlier is not None else ({}, {})
    for key, raw in rows.items():
        source_id = decoded(key)
        if earlier_rows.get(key) == raw and source_id in earlier_sources:
            out[source_id] = earlier_sources[source_id]
            continue
        try:
            labels = json.loads(raw)
        except ValueError:
            continue  # a hand-edited entry mutes nothing
        if isinstance(labels, dict):
            out[source_id] = {str(k): str(v) for k, v in labels.items()}
    return out
