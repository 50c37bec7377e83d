"""TikTok's authorization flow: the portal URL an advertiser approves, and the OAuth calls.

An advertiser approves the developer app at the portal URL; TikTok redirects to the app's
``redirect_uri`` with an ``auth_code`` (valid 1 hour, single use), which
``POST /oauth2/access_token/`` turns into a long-lived access token (not refreshable: it works
until the advertiser cancels the authorization or the app revokes it). ``GET
/oauth2/advertiser/get/`` lists what a token reaches. The app secret goes in the request body
(or, for that GET, the query string the API asks for) and nowhere else: errors and logs carry
TikTok's message, never a secret, an auth code or a token. OAuth calls are not retried: an auth
code is single use, and a lost reply to a successful exchange would make a retry fail anyway.

Usage::

    url = authorization_url(settings.tiktok, redirect_uri="https://example.com/cb", state="x")
    async with OAuthClient(settings.tiktok) as oauth:
        grant = await oauth.exchange("auth-code-from-redirect")   # ApiError: used / expired
        grant.access_token.get_secret_value(), grant.advertiser_ids
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import SecretStr

from config.settings import TikTokSettings
from workers.contract import wire
from workers.tiktok import AUTH_CODES, ApiError, AuthError, MalformedReply, TikTokError

__all__ = [
    "ACCESS_TOKEN_PATH",
    "ADVERTISER_GET_PATH",
    "REVOKE_TOKEN_PATH",
    "Grant",
    "OAuthClient",
    "authorization_url",
]

ACCESS_TOKEN_PATH = "/oauth2/access_token/"  # noqa: S105 - a path, not a secret
REVOKE_TOKEN_PATH = "/oauth2/revoke_token/"  # noqa: S105
ADVERTISER_GET_PATH = "/oauth2/advertiser/get/"
PORTAL_AUTH_PATH = "/portal/auth"
_MESSAGE_LIMIT = 300


def authorization_url(settings: TikTokSettings, *, redirect_uri: str, state: str | None) -> str:
    """The portal URL an advertiser opens to approve ``tiktok.app_id``; on the API's own host
    (``tiktok.base_url``), so the sandbox serves it too. A random ``state`` when None."""
    parts = urlsplit(settings.base_url)
    query = urlencode(
        {
            "app_id": settings.app_id,
            "state": state if state is not None else secrets.token_urlsafe(16),
            "redirect_uri": redirect_uri,
        }
    )
    return f"{parts.scheme}://{parts.netloc}{PORTAL_AUTH_PATH}?{query}"


@dataclass(frozen=True)
class Grant:
    """What an exchanged auth code gives: the token and the advertisers it reaches."""

    access_token: SecretStr
    advertiser_ids: list[str]
    scope: list[int]


class OAuthClient:
    """The ``/oauth2/`` endpoints of ``tiktok.base_url`` for ``tiktok.app_id`` and its secret."""

    def __init__(
        self, settings: TikTokSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._secret = settings.app_secret.get_secret_value()
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
            headers={"Accept": "application/json", "User-Agent": "creditwatch"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"OAuthClient(base_url={self._settings.base_url!r})"

    async def exchange(self, auth_code: str) -> Grant:
        """``POST /oauth2/access_token/``: an auth code for an access token."""
        data = await self._call(
            "POST",
            ACCESS_TOKEN_PATH,
            {"app_id": self._settings.app_id, "secret": self._secret, "auth_code": auth_code},
            hide=(auth_code,),
        )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise MalformedReply("'data.access_token' is missing", endpoint=ACCESS_TOKEN_PATH)
        return Grant(
            access_token=SecretStr(token),
            advertiser_ids=_ids(data.get("advertiser_ids"), ACCESS_TOKEN_PATH),
            scope=[s for s in data.get("scope") or [] if isinstance(s, int)],
        )

    async def advertisers(self, access_token: SecretStr) -> list[str]:
        """``GET /oauth2/advertiser/get/``: the advertiser ids ``access_token`` reaches."""
        token = access_token.get_secret_value()
        data = await self._call(
            "GET",
            ADVERTISER_GET_PATH,
            {"app_id": self._settings.app_id, "secret": self._secret},
            token=token,
            hide=(token,),
        )
        items = data.get("list")
        if not isinstance(items, list):
            raise MalformedReply("'data.list' is not an array", endpoint=ADVERTISER_GET_PATH)
        rows = [item.get("advertiser_id") for item in items if isinstance(item, dict)]
        return _ids(rows, ADVERTISER_GET_PATH)

    async def revoke(self, access_token: SecretStr) -> None:
        """``POST /oauth2/revoke_token/``: the token stops working (calls then get 40105)."""
        token = access_token.get_secret_value()
        await self._call(
            "POST",
            REVOKE_TOKEN_PATH,
            {"app_id": self._settings.app_id, "secret": self._secret, "access_token": token},
            hide=(token,),
        )

    async def _call(
        self,
        method: str,
        path: str,
        fields: Mapping[str, str],
        *,
        token: str | None = None,
        hide: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """One call; the envelope's ``data`` when ``code == 0``, else a TikTokError."""
        url = self._settings.base_url + path
        headers = {"Access-Token": token} if token is not None else {}
        secrets_ = (self._secret, *hide)
        try:
            if method == "GET":
                response = await self._http.get(url, params=dict(fields), headers=headers)
            else:
                response = await self._http.post(url, json=dict(fields), headers=headers)
        except httpx.HTTPError as exc:
            # httpx texts may hold the URL, and the GET's query holds the secret.
            raise TikTokError(f"request failed ({type(exc).__name__})", endpoint=path) from None
        try:
            envelope = wire.loads(response.content)
        except (ValueError, RecursionError):
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            raise MalformedReply(f"HTTP {response.status_code}, not a JSON envelope", endpoint=path)
        code, data = envelope["code"], envelope.get("data")
        request_id = envelope.get("request_id")
        request_id = _hidden(request_id, secrets_) if isinstance(request_id, str) else None
        if code != 0:
            message = envelope.get("message")
            text = _hidden(message if isinstance(message, str) else repr(message), secrets_)
            failure = AuthError if code in AUTH_CODES else ApiError
            raise failure(text, endpoint=path, code=code, request_id=request_id)
        if not isinstance(data, dict):
            raise MalformedReply("'data' is not an object", endpoint=path, request_id=request_id)
        return data


def _hidden(text: str, secrets_: tuple[str, ...]) -> str:
    """``text`` (from the API) cut short, with any secret we sent replaced by ``***``."""
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MESSAGE_LIMIT]


def _ids(value: Any, endpoint: str) -> list[str]:
    """Advertiser ids as strings (numbers in v1.2-era replies)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedReply("advertiser ids are not an array", endpoint=endpoint)
    return [str(item) for item in value if isinstance(item, str | int) and item is not True]
