"""Redis URLs that do not parse, Sentinel and Cluster alike: each refusal says what is wrong."""

from __future__ import annotations

import pytest

from service.connections import RedisTarget


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
