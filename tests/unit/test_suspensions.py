"""Endpoint suspensions on fake time: what counts as persistent, the pause, one probe at a time,
and the ``source.rate_limited`` rule that the poller's statuses drive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from service.detect import center
from service.detect.state import CenterState
from tests.support.fake_time import FakeMonotonic
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import SourceStatusSnapshot
from workers.suspensions import MAX_PAUSE_GROWTH, Pause, Suspensions

ENDPOINT = "/advertiser/balance/get/"
# One fake wall clock for the whole module: 2026-03-01 plus the fake monotonic seconds.
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)


class FakeTime(FakeMonotonic):
    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)


def suspensions(time: FakeTime, **kwargs: float) -> Suspensions:
    options = {"pause_s": 300.0, "persistent_s": 3.0, **kwargs}
    return Suspensions(
        pause_s=options["pause_s"],
        persistent_s=options["persistent_s"],
        app="app-1",
        clock=time,
        wall=time.wall,
        sleep=time.sleep,
    )


def throttle_for_3_s(paused: Suspensions, time: FakeTime) -> None:
    """Three throttles over 3 s: persistent, so the endpoint pauses."""
    for at in [0.0, 1.5, 3.0]:
        time.now = at
        paused.throttled(ENDPOINT, 40100)
    assert paused.active()


def test_throttles_for_less_than_the_persistence_time_are_no_suspension() -> None:
    time = FakeTime()
    paused = suspensions(time)
    for at in [0.0, 0.5, 1.0, 2.9]:
        time.now = at
        assert paused.throttled(ENDPOINT, 40100) is None
    # Three seconds of nothing but throttles: a suspension.
    time.now = 3.0
    pause = paused.throttled(ENDPOINT, 40100)
    assert pause is not None
    assert (pause.app, pause.endpoint, pause.code) == ("app-1", ENDPOINT, 40100)
    assert pause.until - pause.since == timedelta(seconds=300)
    assert paused.active() == [pause]


def test_a_success_ends_the_streak() -> None:
    time = FakeTime()
    paused = suspensions(time)
    assert paused.throttled(ENDPOINT, 40100) is None
    time.now = 2.0
    paused.succeeded(ENDPOINT)
    for at in [2.5, 4.0, 5.0]:  # a new streak, 2.5 s long
        time.now = at
        assert paused.throttled(ENDPOINT, 40100) is None
    time.now = 5.4  # 2.9 s: still not persistent
    assert paused.throttled(ENDPOINT, 40100) is None
    # Another endpoint's throttles are its own.
    assert paused.throttled("/bc/balance/get/", 40100) is None


def test_two_throttles_are_never_enough() -> None:
    time = FakeTime()
    paused = suspensions(time)
    assert paused.throttled(ENDPOINT, 40100) is None
    time.now = 100.0
    assert paused.throttled(ENDPOINT, 40100) is None
    time.now = 100.1
    assert paused.throttled(ENDPOINT, 40100) is not None


def test_pausing_off_never_pauses() -> None:
    time = FakeTime()
    paused = suspensions(time, pause_s=0)
    for at in range(0, 100, 10):
        time.now = at
        assert paused.throttled(ENDPOINT, 40100) is None
    assert not paused.enabled


async def test_callers_wait_out_the_pause_then_one_probes_and_a_success_frees_all() -> None:
    time = FakeTime()
    paused = suspensions(time)
    changes: list[tuple[str, str, Pause | None]] = []
    paused.add_listener(lambda app, endpoint, pause: changes.append((app, endpoint, pause)))
    throttle_for_3_s(paused, time)
    admitted: list[float] = []
    first_in = asyncio.Event()

    async def caller() -> None:
        await paused.admit(ENDPOINT)
        admitted.append(time.now)
        first_in.set()

    callers = [asyncio.create_task(caller()) for _ in range(3)]
    await asyncio.wait_for(first_in.wait(), timeout=5)
    # The first one past the pause is the probe; the others wait for its outcome.
    [probed_at] = admitted
    assert probed_at >= 303.0
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(admitted) == 1
    paused.succeeded(ENDPOINT)
    await asyncio.gather(*callers)
    assert len(admitted) == 3
    assert paused.active() == []
    assert [(app, endpoint, p is None) for app, endpoint, p in changes] == [
        ("app-1", ENDPOINT, False),
        ("app-1", ENDPOINT, True),
    ]


async def test_a_throttled_probe_renews_the_pause_for_everyone() -> None:
    time = FakeTime()
    paused = suspensions(time)
    throttle_for_3_s(paused, time)
    first = paused.active()[0]
    await paused.admit(ENDPOINT)  # the probe, after the pause
    assert time.now >= 303.0
    renewed = paused.throttled(ENDPOINT, 40100)
    assert renewed is not None
    assert renewed.since == first.since  # one suspension, longer
    assert renewed.until > first.until
    waiter = asyncio.create_task(paused.admit(ENDPOINT))
    await waiter
    assert time.now >= 603.0


async def test_each_renewal_doubles_the_pause_up_to_its_cap() -> None:
    # Probes on a fixed pause from several endpoints can keep an app over a limit that counts
    # refused calls too: a renewed pause grows, so the probes thin out.
    time = FakeTime()
    paused = suspensions(time)
    throttle_for_3_s(paused, time)
    lengths = [paused.active()[0].until - paused.active()[0].since]
    for _ in range(5):
        await paused.admit(ENDPOINT)  # the probe, after the pause ...
        pause = paused.throttled(ENDPOINT, 40100)  # ... throttled again
        assert pause is not None
        lengths.append(pause.until - time.wall())
    assert [length.total_seconds() for length in lengths] == [300, 600, 1200, 2400, 2400, 2400]
    assert MAX_PAUSE_GROWTH * 300 == 2400
    paused.succeeded(ENDPOINT)
    start = time.now
    for step in (0.0, 1.5, 3.0):  # a new suspension, later: it starts from pause_s again
        time.now = start + step
        paused.throttled(ENDPOINT, 40100)
    [fresh] = paused.active()
    assert fresh.until - fresh.since == timedelta(seconds=300)


async def test_an_inconclusive_probe_lets_another_caller_probe() -> None:
    time = FakeTime()
    paused = suspensions(time)
    throttle_for_3_s(paused, time)
    await paused.admit(ENDPOINT)  # probe 1 goes out ...
    second = asyncio.create_task(paused.admit(ENDPOINT))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not second.done()
    paused.settle(ENDPOINT)  # ... and ends in an HTTP 500: neither throttled nor through
    await asyncio.wait_for(second, timeout=1)


# -- the rule -----------------------------------------------------------------------------


def at(hours: float) -> datetime:
    return EPOCH + timedelta(hours=hours)


def status(hours: float, source: str, state: str) -> SourceStatusSnapshot:
    limited = state == "rate_limited"
    return SourceStatusSnapshot(
        bc_id="70",
        source=source,
        status=state,
        code=40100 if limited else None,
        endpoint=ENDPOINT if limited else None,
        until=at(hours) + timedelta(minutes=5) if limited else None,
        observed_at=at(hours),
    )


def evaluated(
    *snapshots: SourceStatusSnapshot,
) -> tuple[CenterState | None, list[AlertTransition]]:
    """The center state after these statuses in order, and every transition on the way."""
    state: CenterState | None = None
    emitted: list[AlertTransition] = []
    for snapshot in snapshots:
        result = center.evaluate(state, snapshot)
        if result is not None:
            state = result.state
            emitted.extend(result.transitions)
    return state, emitted


def test_source_rate_limited_fires_once_and_resolves_when_every_source_gets_through() -> None:
    state, emitted = evaluated(
        status(0, "advertiser_balance", "ok"),
        status(1, "advertiser_balance", "rate_limited"),
        status(1, "report", "rate_limited"),
        status(1, "advertiser_balance", "rate_limited"),  # redelivered
        status(1.1, "advertiser_balance", "ok"),  # one source through: still limited
        status(1.05, "report", "ok"),
        status(0.5, "report", "rate_limited"),  # late and older: ignored
    )
    assert [(t.kind, t.status) for t in emitted] == [
        ("source.rate_limited", "firing"),
        ("source.rate_limited", "resolved"),
    ]
    firing, resolved = emitted
    assert firing.severity == "warning"
    assert firing.values["endpoint"] == ENDPOINT
    assert firing.values["code"] == "40100"
    assert firing.values["suspended_until"] == (at(1) + timedelta(minutes=5)).isoformat()
    assert ENDPOINT in firing.summary
    assert resolved.observed_at == at(1.05)  # when the last source got through
    assert state is not None
    assert state.rate_limited == []


def test_rate_limited_and_auth_failed_are_separate_alerts() -> None:
    _, emitted = evaluated(
        status(1, "advertiser_balance", "rate_limited"),
        status(2, "bc_cost", "auth_failed"),
        status(3, "advertiser_balance", "ok"),
        status(4, "bc_cost", "ok"),
    )
    assert [(t.kind, t.status) for t in emitted] == [
        ("source.rate_limited", "firing"),
        ("source.auth_failed", "firing"),
        ("source.rate_limited", "resolved"),
        ("source.auth_failed", "resolved"),
    ]
