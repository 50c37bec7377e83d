"""Redis URLs: standalone and Sentinel, parsed and then used against real servers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from service.connections import RedisTarget
from tests.support.servers import RedisProcess


def test_a_plain_url_is_one_server() -> None:
    target = RedisTarget.parse("redis://:pw@10.0.0.5:6380/2")
    assert target.kind == "standalone"
    assert target.url == "redis://:pw@10.0.0.5:6380/2"


def test_a_sentinel_url_names_nodes_master_and_db() -> None:
    target = RedisTarget.parse("redis+sentinel://:s%40cret@s1:26379,s2:26380,s3/main/3")
    assert target.kind == "sentinel"
    assert target.sentinels == [("s1", 26379), ("s2", 26380), ("s3", 26379)]
    assert target.master == "main"
    assert target.db == 3
    assert target.password == "s@cret"


async def test_sentinel_clients_and_broker_reach_the_master(tmp_path: Path) -> None:
    with (
        RedisProcess(tmp_path / "master") as master,
        RedisProcess(tmp_path / "sentinel", sentinel_of=master.port) as sentinel,
    ):
        target = RedisTarget.parse(f"redis+sentinel://127.0.0.1:{sentinel.port}/main/0")
        client = target.client()
        try:
            await client.set("cw:sentinel-check", "yes")
            broker = target.broker(logger=logging.getLogger("test"))
            await broker.connect()
            await broker.publish(b"hello", stream="cw:sentinel-stream")
            await broker.stop()
            assert await client.get("cw:sentinel-check") == b"yes"
            assert await client.xlen("cw:sentinel-stream") == 1
            info = await client.info("server")
            assert int(info["tcp_port"]) == master.port
        finally:
            await client.aclose()


async def test_a_client_waits_for_one_of_its_own_connections_instead_of_failing(
    redis_url: str, prefix: str
) -> None:
    """Six callers at once on a pool of two: they take turns on the two, none gets an error."""
    client = RedisTarget.parse(redis_url).client(max_connections=2, timeout_s=60)

    async def blocking_call(n: int) -> int:
        # One connection for both commands: the id is that of the connection that blocked.
        async with client.pipeline(transaction=False) as calls:
            calls.blpop([f"{prefix}:nothing:{n}"], timeout=0.2)
            calls.client_id()
            popped, connection = await calls.execute()
        assert popped is None
        return int(connection)

    try:
        used = await asyncio.gather(*(blocking_call(n) for n in range(6)))
    finally:
        await client.aclose()
    assert len(used) == 6
    assert len(set(used)) <= 2
