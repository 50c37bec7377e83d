"""Redis URLs that do not parse, Sentinel and Cluster alike: each refusal says what is wrong;
and the connections that pack commands in C send the bytes redis-py would."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError
from redis.typing import EncodableT

from service.connections import RedisTarget, packed_in_c


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "master name"),
        ("redis+sentinel:///main", "host:port"),
        ("redis+sentinel://s1:x/main", "host:port"),
        ("redis+sentinel://s1:26379/main/x", "/MASTER/DB"),
        ("redis+cluster://", "at least one host:port"),
        ("redis+cluster://n1:x", "host:port"),
        ("redis+cluster://n1:7000/3", "no database"),
    ],
)
def test_bad_redis_urls_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RedisTarget.parse(url)


COMMANDS = [
    ("SET", "k", "v"),
    ("SET", b"k", b"\x00\xff"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"n"),
    ("SET", "k", -12345678901234567890),
    ("SET", "k", 1.5),
    ("SET", "k", 0.1),
    ("SET", "k", 1e300),
    ("SET", "kü", "€"),
    ("SET", "k", memoryview(b"abc")),
    ("SET", "k", bytearray(b"abc")),
    ("set", "k", 0),
    ("MSET", *[f"key:{n}" for n in range(2000)]),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_connections_packed_in_c_send_what_redis_py_would(command: tuple[EncodableT, ...]) -> None:
    plain = Connection()
    packed = packed_in_c(Connection, {})()
    assert isinstance(packed, Connection)
    assert b"".join(packed.pack_command(*command)) == b"".join(plain.pack_command(*command))


@pytest.mark.parametrize("value", [True, None, object()])
def test_a_value_redis_py_refuses_is_refused_packed_in_c_too(value: object) -> None:
    for connection in (Connection(), packed_in_c(Connection, {})()):
        with pytest.raises(DataError):
            connection.pack_command("SET", "k", value)  # type: ignore[arg-type]


def test_only_utf8_text_is_packed_in_c() -> None:
    assert packed_in_c(Connection, {"encoding": "latin-1"}) is Connection
    assert packed_in_c(Connection, {"encoding_errors": "replace"}) is Connection
    pool = RedisTarget.parse("redis://127.0.0.1:6379/0").client().connection_pool
    assert pool.connection_class is packed_in_c(Connection, {})
