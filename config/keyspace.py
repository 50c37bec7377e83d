"""Where creditwatch keeps things in Redis: the shard of an account, and every key's spelling.

An account (or business center) belongs to one of ``streams.shards`` shards, chosen by a stable
hash of its id (CRC-32), so it stays in the same shard forever and its snapshots keep their
order. A shard owns a snapshot stream, an alerts stream, its states and their versions hash;
the detector commits a batch of states and their alerts in one transaction, so with more than
one shard every key of a shard carries the same Redis Cluster hash tag and lands in one slot.
Shard N's tag is ``{sN}``, or ``{sN.k}`` with the smallest k that puts it in the N-th equal
part of the 16,384 slots: a cluster made by ``redis-cli --cluster create`` gives each master a
contiguous equal part, so with shards a multiple of the masters each master gets as many
shards (plain ``{s0}``..``{s2}`` would put two of three shards on one master). Everything else
(the delivery side, ledgers, silences, claims, health marks) is one family committed together
in places, so it shares the tag ``{g}``.

With one shard (the default) no key has a tag and every name is what it always was
(``creditwatch:snapshots``, ``creditwatch:state:123``), so a standalone Redis upgraded in
place keeps its state. A Redis Cluster needs at least two shards (``config.settings`` says so).

Usage::

    space = Keyspace("creditwatch", shards=16)
    space.shard_of("7001001")          # -> 0..15, the same on every process, forever
    space.snapshot_stream(3)           # -> "creditwatch:{s3.20}:snapshots"
    space.state_key("state", "7001001")
    space.deliveries_due()             # -> "creditwatch:{g}:deliveries:due"

Every key family has a method here, named for what it holds, so every name is spelled in this
one module (``key`` and ``shard_key`` stay for them and for tests).
"""

from __future__ import annotations

import binascii
import functools
import itertools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["GLOBAL_TAG", "SLOTS", "Keyspace", "shard_tag"]

# The hash tag of the keys that belong to no shard (delivery side, ledgers, silences, ...).
GLOBAL_TAG = "{g}"
SLOTS = 16384  # Redis Cluster's hash slots


def slot(tag: str) -> int:
    """The cluster slot of a hash tag: CRC-16/XMODEM (what Redis uses), modulo the slots."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


@functools.cache
def shard_tag(shard: int, shards: int) -> str:
    """The hash tag of ``shard`` (without braces): ``sN``, or ``sN.k`` with the smallest k
    whose slot lies in the shard's equal part of the slot space. A pure function of its
    arguments, so every process, every release, spells a shard's keys alike."""
    low, high = shard * SLOTS // shards, (shard + 1) * SLOTS // shards
    for attempt in itertools.count():
        tag = f"s{shard}" if attempt == 0 else f"s{shard}.{attempt}"
        if low <= slot(tag) < high:
            return tag
    raise AssertionError("unreachable")  # itertools.count() never ends


@dataclass(frozen=True)
class Keyspace:
    """Key names under ``prefix`` for ``shards`` shards."""

    prefix: str
    shards: int = 1

    @property
    def tagged(self) -> bool:
        """Whether keys carry hash tags: only with several shards, so one shard keeps its names."""
        return self.shards > 1

    def shard_of(self, owner_id: str) -> int:
        """The shard of an advertiser or business center id: a stable hash, never reassigned
        while ``shards`` is unchanged (changing it moves accounts: see the README)."""
        if self.shards == 1:
            return 0
        return zlib.crc32(owner_id.encode()) % self.shards

    def by_shard(self, owner_ids: Iterable[str]) -> dict[int, list[str]]:
        """The ids grouped by their shard, in the order given (a command per shard's key)."""
        grouped: dict[int, list[str]] = {}
        for owner_id in owner_ids:
            grouped.setdefault(self.shard_of(owner_id), []).append(owner_id)
        return grouped

    def _join(self, tag: str, parts: tuple[str, ...]) -> str:
        return ":".join((self.prefix, tag, *parts) if self.tagged else (self.prefix, *parts))

    def shard_key(self, shard: int, *parts: str) -> str:
        """A key of one shard: ``creditwatch:{s3.20}:<parts>`` (``creditwatch:<parts>``
        untagged)."""
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} out of 0..{self.shards - 1}")
        return self._join(f"{{{shard_tag(shard, self.shards)}}}" if self.tagged else "", parts)

    def key(self, *parts: str) -> str:
        """A key of no shard: ``creditwatch:{g}:<parts>`` (``creditwatch:<parts>`` untagged)."""
        return self._join(GLOBAL_TAG, parts)

    def snapshot_stream(self, shard: int) -> str:
        return self.shard_key(shard, "snapshots")

    def alert_stream(self, shard: int) -> str:
        return self.shard_key(shard, "alerts")

    def snapshot_streams(self) -> list[str]:
        return [self.snapshot_stream(shard) for shard in range(self.shards)]

    def alert_streams(self) -> list[str]:
        return [self.alert_stream(shard) for shard in range(self.shards)]

    def state_key(self, namespace: str, state_id: str) -> str:
        """Where the state ``state_id`` of ``namespace`` (``state``, ``center``) is kept."""
        return self.shard_key(self.shard_of(state_id), namespace, state_id)

    def state_pattern(self, namespace: str) -> str:
        """A SCAN pattern matching every state key of ``namespace``, in every shard."""
        return self._join("{s*}", (namespace, "*"))

    def state_id_of(self, namespace: str, key: str) -> str:
        """The state id in a key matched by ``state_pattern``."""
        return key.rpartition(f":{namespace}:")[2]

    def versions_key(self, namespace: str, shard: int) -> str:
        """The hash of state id -> commit token of ``namespace``'s states in ``shard``."""
        return self.shard_key(shard, f"{namespace}-versions")

    def rows_key(self, namespace: str, shard: int) -> str:
        """The hash of state id -> status-list row of ``namespace``'s states in ``shard``."""
        return self.shard_key(shard, f"{namespace}-rows")

    # Every key family of no shard, one line each. ``slot_key`` routes a transaction over
    # them to the master of their slot (they all share ``{g}``).

    def slot_key(self) -> str:
        return self.key()

    def deadletter_stream(self) -> str:
        return self.key("deadletter")

    def fresh(self) -> str:  # hash: advertiser -> when its last balance snapshot came
        return self.key("fresh")

    def rule_failures(self) -> str:  # the failing (rule, account) pairs
        return self.key("rule_failures")

    def ledger(self, advertiser_id: str) -> str:  # hash: credits and programs
        return self.key("ledger", advertiser_id)

    def ledger_index(self) -> str:  # hash: advertiser with a saved ledger -> edit token
        return self.key("ledger-index")

    def ledger_index_built(self) -> str:  # set once every older ledger is in the index
        return self.key("ledger-index-built")

    def silences(self) -> str:
        return self.key("silences")

    def silences_version(self) -> str:
        return self.key("silences:version")

    def subscriptions(self) -> str:  # hash: subscription id -> subscription
        return self.key("subscriptions")

    def subscription_test(self, subscription_id: str) -> str:
        return self.key("subscription_test", subscription_id)

    def receiver_disabled(self, receiver: str) -> str:
        return self.key("receiver", receiver, "disabled")

    def receiver_ratelimit(self, receiver: str) -> str:
        return self.key("ratelimit", receiver)

    def digest_sent(self, receiver: str) -> str:  # the last digest period sent
        return self.key("digest", "sent", receiver)

    def groups_due(self) -> str:  # sorted set: group id -> when due
        return self.key("groups", "due")

    def group(self, gid: str) -> tuple[str, str, str]:
        """A notification group's hash, and its pending and firing transitions."""
        base = self.key("group", gid)
        return base, f"{base}:pending", f"{base}:firing"

    def routed(self, receiver: str, transition_id: str) -> str:  # a transition seen once
        return self.key("routed", receiver, transition_id)

    def early_resolved(self, receiver: str, alert_id: str) -> str:
        return self.key("early-resolved", receiver, alert_id)

    def inhibit_sources(self) -> str:
        return self.key("inhibit", "sources")

    def inhibit_holding(self) -> str:
        return self.key("inhibit", "holding")

    def inhibit_ended(self, alert_id: str) -> str:
        return self.key("inhibit", "ended", alert_id)

    def delivery(self, delivery_id: str) -> str:
        return self.key("delivery", delivery_id)

    def deliveries_due(self) -> str:  # sorted set: delivery id -> next attempt
        return self.key("deliveries", "due")

    def deliveries_index(self) -> str:
        return self.key("deliveries", "index")

    def deliveries_failed(self) -> str:
        return self.key("deliveries", "failed")

    def poll_health(self) -> str:  # hash: source:bc -> last successful poll
        return self.key("health", "polls")

    def suspension_health(self) -> str:
        return self.key("health", "suspensions")

    def risk_marks(self) -> str:  # sorted set: the accounts at risk
        return self.key("risk")

    def claim(self, job_id: str, tick: str) -> str:  # the replica that runs a tick
        return self.key("claim", job_id, tick)

    def sweep(self, job_id: str) -> tuple[str, str]:  # a sweep's lease, and its end
        return self.key("sweep", job_id), self.key("sweep", job_id, "done")
