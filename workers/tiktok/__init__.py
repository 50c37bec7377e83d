"""The TikTok Business API client: ``TikTokClient`` (the endpoints, ``client``) on an
``ApiTransport`` (budget, retries, suspensions, envelope and token hygiene, ``transport``),
raising the errors of ``errors``. Import from here.

Usage::

    async with TikTokClient(settings.tiktok, budget=budget) as api:
        rows = await api.advertiser_balances("7001")
"""

from workers.tiktok.client import (
    ADVERTISER_BALANCE_PATH,
    BC_BALANCE_PATH,
    BC_COST_PATH,
    BC_TRANSACTION_PATH,
    MAX_PAGES,
    REPORT_PATH,
    TikTokClient,
)
from workers.tiktok.errors import (
    AUTH_CODES,
    ApiError,
    AuthError,
    BadRequest,
    MalformedReply,
    PermissionDenied,
    RateLimited,
    TikTokError,
    TransientError,
)
from workers.tiktok.transport import ApiTransport, pause_listener, reply_time

__all__ = [
    "ADVERTISER_BALANCE_PATH",
    "AUTH_CODES",
    "BC_BALANCE_PATH",
    "BC_COST_PATH",
    "BC_TRANSACTION_PATH",
    "MAX_PAGES",
    "REPORT_PATH",
    "ApiError",
    "ApiTransport",
    "AuthError",
    "BadRequest",
    "MalformedReply",
    "PermissionDenied",
    "RateLimited",
    "TikTokClient",
    "TikTokError",
    "TransientError",
    "pause_listener",
    "reply_time",
]
