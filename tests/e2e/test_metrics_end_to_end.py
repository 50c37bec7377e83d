"""``/metrics`` after an end-to-end run: every counter the ops surface promises is moving.

Sandbox -> poller -> Redis -> detectors -> alerts -> webhook, with the service's own HTTP
server; the registry is process-wide, so the test compares values before and after.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings
from tests.support.ops_stack import ops_stack
from tests.support.waiting import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, where: Callable[[dict[str, str]], bool] = bool) -> float:
    """The sum of ``name`` over the label sets ``where`` accepts (all, by default)."""
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and (where(dict(labels)) or not labels)
    )


def present(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]


async def test_metrics_move_through_an_end_to_end_run(settings: Settings) -> None:
    async with ops_stack(settings) as stack:
        before = parse((await stack.get("/metrics")).text)
        await stack.advance(12)

        async def delivered() -> bool:
            return len(stack.sink.received) > 0

        await eventually(delivered, within=20)
        after = parse((await stack.get("/metrics")).text)

    def grew(name: str, where: Callable[[dict[str, str]], bool] = lambda _: True) -> None:
        assert total(after, name, where) > total(before, name, where), name

    grew("creditwatch_polls_total", lambda lb: lb["outcome"] == "ok")
    grew(
        "creditwatch_api_calls_total",
        lambda lb: lb["endpoint"] == "/advertiser/balance/get/" and lb["code"] == "0",
    )
    grew("creditwatch_snapshots_published_total", lambda lb: lb["kind"] == "account_balance")
    grew("creditwatch_snapshots_consumed_total", lambda lb: lb["outcome"] == "applied")
    grew("creditwatch_alert_transitions_total", lambda lb: lb["status"] == "firing")
    grew(
        "creditwatch_deliveries_total",
        lambda lb: lb["receiver"] == "e2e" and lb["outcome"] == "delivered",
    )
    assert "creditwatch_ratelimit_wait_seconds_total" in {name for name, _ in after}
    assert present(after, "creditwatch_delivery_queue_size") == [{}]
    streams = {lb["stream"] for lb in present(after, "creditwatch_stream_length")}
    assert streams == {"snapshots", "alerts", "deadletter"}  # dead-letter size included
    for gauge in ("creditwatch_consumer_group_lag", "creditwatch_consumer_group_pending"):
        groups = {(lb["stream"], lb["group"]) for lb in present(after, gauge)}
        assert {("snapshots", "detectors"), ("alerts", "notifiers")} <= groups, gauge
    ages = {
        (lb["source"], lb["bc_id"]): after[("creditwatch_data_age_seconds", frozenset(lb.items()))]
        for lb in present(after, "creditwatch_data_age_seconds")
    }
    for bc_id in stack.settings.tiktok.bc_ids:
        assert 0 <= ages[("advertiser_balance", bc_id)] < 30
