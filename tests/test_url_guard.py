"""SSRF refusals for subscriber URLs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest

from service.http.url_guard import UnsafeUrl, check_subscriber_url


def resolver(*addresses: str) -> Callable[[str], Awaitable[list[str]]]:
    async def resolve(host: str) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "http"),
        ("https://127.0.0.1/x", "not public"),
        ("https://[::1]/x", "not public"),
        ("https://169.254.169.254/latest/meta-data", "not public"),
        ("https://10.1.2.3/x", "not public"),
        ("https://192.168.0.10/x", "not public"),
        ("https://172.20.0.1/x", "not public"),
        ("https://100.64.0.1/x", "not public"),
        ("https://[::ffff:10.0.0.1]/x", "not public"),
        ("https://224.0.0.1/x", "not public"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
    ],
)
async def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        await check_subscriber_url(url, allow_private=False, resolve=resolver("93.184.215.14"))


async def test_a_name_that_resolves_inside_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match=re.escape("10.0.0.7")):
        await check_subscriber_url(
            "https://innocent.example.com/hook",
            allow_private=False,
            resolve=resolver("93.184.215.14", "10.0.0.7"),
        )


async def test_localhost_really_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match="not public"):
        await check_subscriber_url("https://localhost/hook", allow_private=False)


async def test_public_https_urls_pass_and_labs_may_allow_private() -> None:
    await check_subscriber_url(
        "https://hooks.example.com/cw", allow_private=False, resolve=resolver("93.184.215.14")
    )
    await check_subscriber_url("http://127.0.0.1:9000/hook", allow_private=True)
