"""The keyspace: one shard keeps every old key name; several shards hash-tag every key so
that what one transaction touches shares a Redis Cluster slot, and spread over the masters."""

from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase

import pytest
from redis.crc import key_slot

from config.keyspace import SLOTS, Keyspace
from config.settings import StreamSettings


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


def test_one_shard_keeps_the_names_a_standalone_redis_already_has() -> None:
    space = StreamSettings(prefix="cw").keyspace
    assert space.snapshot_streams() == ["cw:snapshots"]
    assert space.alert_streams() == ["cw:alerts"]
    assert space.state_key("state", "7001") == "cw:state:7001"
    assert space.versions_key("state", 0) == "cw:state-versions"
    assert space.deadletter_stream() == "cw:deadletter"
    assert space.key("deliveries", "due") == "cw:deliveries:due"
    assert space.state_pattern("state") == "cw:state:*"
    assert {space.shard_of(str(n)) for n in range(100)} == {0}


def test_every_key_family_keeps_the_name_it_was_spelled_with() -> None:
    """The names each family had when spelled where used: a deployment upgrades in place."""
    for space, g in ((Keyspace("cw"), "cw"), (Keyspace("cw", 4), "cw:{g}")):
        assert space.slot_key() == g
        assert [
            space.fresh(),
            space.rule_failures(),
            space.ledger("7001"),
            space.ledger_index(),
            space.ledger_index_built(),
            space.silences(),
            space.silences_version(),
            space.subscriptions(),
            space.subscription_test("s1"),
            space.receiver_disabled("ops"),
            space.receiver_ratelimit("ops"),
            space.digest_sent("ops"),
            space.groups_due(),
            *space.group("g1"),
            space.routed("ops", "t1"),
            space.early_resolved("ops", "a1"),
            space.inhibit_sources(),
            space.inhibit_holding(),
            space.inhibit_ended("a1"),
            space.delivery("d1"),
            space.deliveries_due(),
            space.deliveries_index(),
            space.deliveries_failed(),
            space.poll_health(),
            space.suspension_health(),
            space.risk_marks(),
            space.claim("balance:7001", "101"),
            *space.sweep("balance"),
        ] == [
            f"{g}:{name}"
            for name in (
                "fresh",
                "rule_failures",
                "ledger:7001",
                "ledger-index",
                "ledger-index-built",
                "silences",
                "silences:version",
                "subscriptions",
                "subscription_test:s1",
                "receiver:ops:disabled",
                "ratelimit:ops",
                "digest:sent:ops",
                "groups:due",
                "group:g1",
                "group:g1:pending",
                "group:g1:firing",
                "routed:ops:t1",
                "early-resolved:ops:a1",
                "inhibit:sources",
                "inhibit:holding",
                "inhibit:ended:a1",
                "delivery:d1",
                "deliveries:due",
                "deliveries:index",
                "deliveries:failed",
                "health:polls",
                "health:suspensions",
                "risk",
                "claim:balance:7001:101",
                "sweep:balance",
                "sweep:balance:done",
            )
        ]
    assert Keyspace("cw").rows_key("state", 0) == "cw:state-rows"


def test_an_account_keeps_its_shard_forever() -> None:
    """CRC-32 of the id, pinned: a change of hash would move every account to another shard
    (and its order across two streams)."""
    space = Keyspace("cw", 16)
    assert [space.shard_of(a) for a in ("7001001", "7300000000100", "820000")] == [4, 10, 11]
    assert Keyspace("other-prefix", 16).shard_of("7001001") == 4  # the prefix plays no part


def test_accounts_spread_over_the_shards() -> None:
    space = Keyspace("cw", 16)
    counts = Counter(space.shard_of(str(7_000_000_000_000 + n)) for n in range(16_000))
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 1.15 * 1000 and min(counts.values()) > 0.85 * 1000


@pytest.mark.parametrize("shards", [2, 3, 16, 1024])
def test_what_a_shard_commits_together_shares_one_slot(shards: int) -> None:
    space = Keyspace("cw", shards)
    for advertiser in (str(7_100_000_000_000 + n) for n in range(50)):
        shard = space.shard_of(advertiser)
        together = [
            space.state_key("state", advertiser),
            space.state_key("bcstate", advertiser),
            space.versions_key("state", shard),
            space.versions_key("bcstate", shard),
            space.alert_stream(shard),
            space.snapshot_stream(shard),
        ]
        assert len({slot_of(k) for k in together}) == 1, together
    everything_else = [space.key("deliveries", "due"), space.key("group", "g1"), space.key()]
    assert len({slot_of(k) for k in everything_else}) == 1
    assert len({slot_of(s) for s in space.snapshot_streams()}) == shards


@pytest.mark.parametrize(("shards", "masters"), [(3, 3), (6, 3), (12, 3), (12, 4), (16, 8)])
def test_shards_spread_evenly_over_the_masters_of_a_fresh_cluster(
    shards: int, masters: int
) -> None:
    """``redis-cli --cluster create`` gives master i the i-th equal contiguous slot range."""
    space = Keyspace("cw", shards)

    def master(slot: int) -> int:
        return min(slot * masters // SLOTS, masters - 1)

    per_master = Counter(master(slot_of(s)) for s in space.snapshot_streams())
    assert per_master == dict.fromkeys(range(masters), shards // masters)


def test_the_state_pattern_finds_states_of_every_shard_and_nothing_else() -> None:
    space = Keyspace("cw", 8)
    states = [space.state_key("state", str(n)) for n in range(40)]
    others = [
        space.state_key("bcstate", "7001"),
        space.versions_key("state", 3),
        space.alert_stream(2),
        space.key("state-like", "x"),
    ]
    pattern = space.state_pattern("state")
    assert all(fnmatchcase(k, pattern) for k in states)
    assert not any(fnmatchcase(k, pattern) for k in others)
    assert [space.state_id_of("state", k) for k in states] == [str(n) for n in range(40)]


def test_a_shard_outside_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shard 4 out of 0\.\.3"):
        Keyspace("cw", 4).snapshot_stream(4)
