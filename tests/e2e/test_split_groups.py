"""Detectors and notifiers as separate processes (``streams.groups``): a ``detectors`` process
and a ``notifiers`` process between them deliver every transition once, and each joined only
its own consumer group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import Settings
from service.streams import DETECTORS, NOTIFIERS
from tests.support.deliveries import assert_each_transition_once
from tests.support.grant_polls import GRANTS, service_config, service_env, snapshot
from tests.support.processes import Role
from tests.support.receiver import WebhookSink
from tests.support.waiting import eventually

ADVERTISERS = 20


async def consumers(redis: Redis, stream: str, group: str) -> set[str]:
    rows = await redis.xinfo_consumers(stream, group)
    return {decoded(row["name"]) for row in rows}


async def test_a_detectors_process_and_a_notifiers_process_deliver_every_transition_once(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    async with WebhookSink() as sink:
        env = service_env(settings, service_config(tmp_path, sink.url))
        roles = {
            group: Role(
                "service",
                {
                    **env,
                    "CREDITWATCH_STREAMS__GROUPS": group,
                    "CREDITWATCH_STREAMS__CONSUMER": f"only-{group}",
                },
                tmp_path / f"{group}.log",
            )
            for group in (DETECTORS, NOTIFIERS)
        }
        broker = RedisBroker(settings.redis_url or "")
        await broker.connect()
        try:

            async def both_started() -> bool:
                return all("service.started" in r.output() for r in roles.values())

            await eventually(both_started, within=30)
            for poll in range(len(GRANTS)):
                for advertiser in range(ADVERTISERS):
                    await broker.publish(
                        snapshot(advertiser, poll), stream=settings.streams.snapshots
                    )

            async def all_delivered() -> bool:
                return len(sink.payloads()) >= 4 * ADVERTISERS

            await eventually(all_delivered, within=60, every=0.5)
            await asyncio.sleep(1)  # anything doubled would show up now
            joined = {
                DETECTORS: await consumers(redis_client, settings.streams.snapshots, DETECTORS),
                NOTIFIERS: await consumers(redis_client, settings.streams.alerts, NOTIFIERS),
            }
        finally:
            await broker.stop()
            codes = {group: role.stop() for group, role in roles.items()}

    assert codes == {DETECTORS: 0, NOTIFIERS: 0}, {g: r.output()[-2000:] for g, r in roles.items()}
    assert_each_transition_once(sink, ADVERTISERS)
    assert len(sink.received) == 4 * ADVERTISERS  # nothing failed, so nothing was sent again
    # Each process read only its own stream: the detectors process never joined the
    # notifiers' group, nor the notifiers process the detectors'.
    assert joined == {DETECTORS: {"only-detectors"}, NOTIFIERS: {"only-notifiers"}}
    assert "alert.transition" in roles[DETECTORS].output()
    assert "alert.transition" not in roles[NOTIFIERS].output()
