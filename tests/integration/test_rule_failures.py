"""A rule that raises cannot take down an account's detection (real Redis, the real service).

The other rules keep running and alerting, every snapshot is acknowledged, the failure is
dead-lettered once per (rule, account, cause) rather than per snapshot, counted, and shown by
``/readyz`` until the rule runs clean again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from config.ledger import LadderProgram, LadderTier
from config.settings import NotifySettings, Settings
from service.deadletter import DeadLetters
from service.detect import credit_balance, evaluate
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.ledger_store import ConfigLedger
from service.detect.rule_failures import RuleHealth
from service.detect.snapshot_consumer import Detector
from service.detect.state import AccountState, CenterState, StateStore
from service.roles import service_role
from tests.support.snapshots import day_spend, grant_snapshot
from tests.support.streams import body, drained, entries
from tests.support.waiting import eventually
from workers.contract.alerts import AlertTransition, parse_transition
from workers.contract.snapshots import AccountBalanceSnapshot, DailySpendSnapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)
POISONED = "71"


def balance(valid_grant: str, minute: int, advertiser_id: str = POISONED) -> AccountBalanceSnapshot:
    observed_at = T0 + timedelta(minutes=minute)
    return grant_snapshot("70", advertiser_id, valid_grant, observed_at, name="Draining Shop")


class Exploding:
    """A test-only rule that raises for one advertiser while ``armed``."""

    def __init__(self) -> None:
        self.armed = True

    def __call__(
        self,
        state: AccountState,
        snapshot: AccountSnapshot,
        ledger: AccountLedger,
        settings: object,
    ) -> tuple[AccountState, list[AlertTransition]]:
        if self.armed and state.advertiser_id == POISONED:
            raise OverflowError("date value out of range")
        return state, []


@pytest.fixture
def exploding(monkeypatch: pytest.MonkeyPatch) -> Iterator[Exploding]:
    rule = Exploding()
    monkeypatch.setitem(evaluate.RULES, "exploding", evaluate.Listed(rule, evaluate.ANY_SNAPSHOT))
    yield rule


async def kinds_fired(redis: Redis, settings: Settings, advertiser_id: str) -> set[str]:
    transitions = [parse_transition(body(f)) for f in await entries(redis, settings.streams.alerts)]
    return {
        t.kind for t in transitions if t.advertiser_id == advertiser_id and t.status == "firing"
    }


def errors_counted(rule: str) -> float:
    value = REGISTRY.get_sample_value("creditwatch_rule_errors_total", {"rule": rule})
    return value or 0.0


async def test_a_raising_rule_is_contained_dead_lettered_once_and_shown_by_readyz(
    settings: Settings, redis_client: Redis, exploding: Exploding
) -> None:
    settings = settings.model_copy(update={"notify": NotifySettings(console=False)})
    stream = settings.streams.snapshots
    urls: list[str] = []
    counted_before = errors_counted("exploding")
    async with (
        service_role(settings, settings.redis_url or "", on_listening=urls.append) as broker,
        httpx.AsyncClient() as http,
    ):
        for number, grant in enumerate(("300", "10", "0")):
            await broker.publish(balance(grant, number).to_json(), stream=stream)
            # One batch per snapshot: the failure recurs in batch after batch.
            await eventually(lambda: drained(redis_client, stream, "detectors"))

        # The other rules kept alerting for the poisoned account.
        fired = await kinds_fired(redis_client, settings, POISONED)
        assert {credit_balance.LOW, credit_balance.EXHAUSTED} <= fired
        # Every snapshot was acknowledged; one dead letter for three failing snapshots.
        assert (await redis_client.xpending(stream, "detectors"))["pending"] == 0
        dead = await entries(redis_client, settings.streams.deadletter)
        assert [(f[b"source"], f[b"reason"]) for f in dead] == [
            (b"rules", b"rule exploding raised")
        ]
        assert dead[0][b"error"].startswith(b"OverflowError at test_rule_failures.py:")
        assert b'"advertiser_id":"71"' in dead[0][b"payload"]
        assert errors_counted("exploding") - counted_before == 3

        ready = await http.get(f"{urls[0]}/readyz")
        assert ready.status_code == 200  # degraded, not unready: see the README
        assert ready.json() == {
            "status": "degraded",
            "reasons": ["rule exploding failing for 1 account(s)"],
        }

        exploding.armed = False  # the cause is fixed: the next clean run clears it
        await broker.publish(balance("0", 3).to_json(), stream=stream)

        async def recovered() -> bool:
            answer = await http.get(f"{urls[0]}/readyz")
            return bool(answer.json().get("status") == "ready")

        await eventually(recovered)
    assert len(await entries(redis_client, settings.streams.deadletter)) == 1


def poisoned_program() -> LadderProgram:
    """A window in year 1, as stored before ledger dates were bounded: built without the
    validation that now refuses it, so the real ladder rule meets it."""
    return LadderProgram.model_construct(
        id="year-one",
        advertiser_id=POISONED,
        name="",
        currency="USD",
        window_start=datetime(1, 1, 1, tzinfo=UTC),
        window_end=datetime(1, 1, 2, tzinfo=UTC),
        tiers=[LadderTier(threshold=Decimal("500.00"), reward=Decimal("50.00"))],
    )


def spend(day: int, cash: str, minute: int) -> DailySpendSnapshot:
    day_start = T0 + timedelta(days=day)
    observed_at = day_start + timedelta(minutes=minute)
    return day_spend(POISONED, day_start.date(), observed_at, cash=cash, name="Draining Shop")


async def test_a_poisoned_ladder_entry_fails_only_the_ladder_rule_and_only_once(
    settings: Settings, redis_client: Redis
) -> None:
    streams = settings.streams
    dead_letters = DeadLetters(redis_client, streams)
    accounts = StateStore(redis_client, streams, AccountState, "state")
    detector = Detector(
        accounts=accounts,
        centers=StateStore(redis_client, streams, CenterState, "bcstate"),
        ledger=ConfigLedger([], [poisoned_program()]),
        dead_letters=dead_letters,
        settings=settings.detect,
        rule_health=RuleHealth(redis_client, streams, dead_letters),
    )
    snapshots = [balance("300", 0), spend(0, "20", 1), balance("10", 2), spend(1, "30", 3)]
    kinds: set[str] = set()
    for number, snapshot in enumerate(snapshots):
        emitted = await detector.handle_batch([(snapshot.to_json(), f"{number + 1}-0")])
        kinds |= {t.kind for t in emitted}
    assert credit_balance.LOW in kinds
    state = await accounts.load(POISONED)
    assert state is not None
    assert set(state.spend["bc_cost"]) == {T0.date(), (T0 + timedelta(days=1)).date()}
    dead = await entries(redis_client, streams.deadletter)
    assert [f[b"reason"] for f in dead] == [b"rule ladder raised"]
    assert dead[0][b"error"].startswith(b"OverflowError at ")
