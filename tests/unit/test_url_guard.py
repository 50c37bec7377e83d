"""SSRF refusals for subscriber URLs, and the check on the address actually connected to."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest

from service.deliver.url_guard import UnsafeUrl, check_subscriber_url, public


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


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the cloud metadata address
        "64:ff9b::10.0.0.1",  # NAT64 of a private address
        "64:ff9b:1::808:808",  # NAT64 local-use prefix: translated by our own network
        "2002:c0a8:101::1",  # 6to4 embedding 192.168.1.1
        "2002:7f00:1::1",  # 6to4 embedding 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::ffff:0:a9fe:a9fe",  # SIIT, IPv4-translated
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::a9fe:a9fe",  # IPv4-compatible
        "::8.8.8.8",  # IPv4-compatible, even of a public address: deprecated, tunnelled
        "fec0::1",  # site-local
        "fe80::1%eth0",  # link-local with a zone
    ],
)
async def test_ipv6_forms_that_reach_inside_are_refused(address: str) -> None:
    assert not public(address)
    literal = address.split("%", 1)[0]
    with pytest.raises(UnsafeUrl, match="not public"):
        await check_subscriber_url(f"https://[{literal}]/hook", allow_private=False)
    with pytest.raises(UnsafeUrl, match="not public"):
        await check_subscriber_url(
            "https://hooks.example.com/x", allow_private=False, resolve=resolver(address)
        )


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111", "93.184.215.14"]
)
def test_public_addresses_pass_also_when_translated_from_public_ipv4(address: str) -> None:
    assert public(address)
