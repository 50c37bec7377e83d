"""The onboarding commands: ``creditwatch auth url``, ``auth exchange`` and ``auth check``.

From a developer app to a working connection: ``url`` prints the page an advertiser opens to
approve the app; ``exchange`` turns the ``auth_code`` TikTok redirects with into an access
token (printed once; the app secret comes from ``CREDITWATCH_TIKTOK__APP_SECRET`` only);
``check`` shows, for every connection, the Business Centers its token reaches with the user's
roles and ad accounts, and says what to do where a configured Business Center is out of reach
or lacks the Finance role the payment endpoints need (exit 1; 0 when all is well). Nothing
here prints a token other than the new one, or any secret.

Usage::

    creditwatch auth url --redirect-uri https://example.com/tiktok/callback
    creditwatch auth exchange --auth-code 3f9c...
    creditwatch auth check
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from config.connections import ConnectionSettings
from config.settings import ENV_PREFIX, Settings
from workers.api_budget import ApiBudget
from workers.business_centers import ReachedCenter, account_count, business_centers
from workers.oauth import OAuthClient, authorization_url
from workers.tiktok import AuthError, PermissionDenied, TikTokClient, TikTokError

__all__ = ["EXIT_FAILED", "add_auth_subcommands", "run_auth"]

EXIT_FAILED = 1
FINANCE_HINT = (
    "ask a BC admin to grant Finance Analyst (or Finance Manager) to this user in "
    "Business Center > Members; without it the payment endpoints answer 40001"
)
REACH_HINT = (
    "authorize the app with a user of that Business Center (creditwatch auth url, then "
    "auth exchange) and use that token for it, or remove it from bc_ids"
)


def add_auth_subcommands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``auth url``, ``auth exchange`` and ``auth check``."""
    auth = commands.add_parser("auth", help="connect creditwatch to TikTok (onboarding)")
    what = auth.add_subparsers(dest="action", required=True)
    url = what.add_parser("url", help="the page an advertiser opens to approve the app")
    url.add_argument("--redirect-uri", required=True, help="the app's registered redirect URL")
    url.add_argument("--state", default=None, help="echoed back by TikTok (default: random)")
    exchange = what.add_parser("exchange", help="an auth code for an access token")
    exchange.add_argument("--auth-code", required=True, help="from the redirect (1 h, once)")
    what.add_parser("check", help="what each connection reaches, and its Finance roles")


async def run_auth(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run one ``auth`` action; SettingsError (exit 2) for a missing app id, secret or token."""
    if args.action == "url":
        settings.require_app(secret=False)
        print(
            authorization_url(settings.tiktok, redirect_uri=args.redirect_uri, state=args.state),
            file=out,
        )
        return 0
    if args.action == "exchange":
        settings.require_app(secret=True)
        return await _exchange(settings, args.auth_code, out)
    settings.require_api_access()
    return await _check(settings, out)


async def _exchange(settings: Settings, auth_code: str, out: TextIO) -> int:
    async with OAuthClient(settings.tiktok) as oauth:
        try:
            grant = await oauth.exchange(auth_code)
        except TikTokError as error:
            print(f"creditwatch: auth exchange failed: {error}", file=sys.stderr)
            return EXIT_FAILED
    ids = grant.advertiser_ids
    token = grant.access_token.get_secret_value()
    print(f"access token (shown once; store it as a secret): {token}", file=out)
    print(f"it reaches {len(ids)} advertisers{': ' + ', '.join(ids) if ids else ''}", file=out)
    print(
        f"next: set it as {ENV_PREFIX}TIKTOK__ACCESS_TOKEN (or in a tiktok.connections entry) "
        "and run `creditwatch auth check`",
        file=out,
    )
    return 0


async def _check(settings: Settings, out: TextIO) -> int:
    tiktok = settings.tiktok
    # The connections of one developer app share its budget, as in the poller.
    budgets: dict[str, ApiBudget] = {}
    problems: list[str] = []
    for connection in tiktok.resolved_connections():
        if connection.app_id not in budgets:
            budgets[connection.app_id] = ApiBudget.from_settings(tiktok, app=connection.app_id)
        budget = budgets[connection.app_id]
        async with TikTokClient(tiktok.for_connection(connection), budget=budget) as api:
            problems += await _check_connection(api, connection, out)
    if problems:
        print(f"{len(problems)} problem(s):", file=out)
        for line in problems:
            print(f"  {line}", file=out)
        return EXIT_FAILED
    print("all connections reach their Business Centers with a Finance role", file=out)
    return 0


async def _check_connection(
    api: TikTokClient, connection: ConnectionSettings, out: TextIO
) -> list[str]:
    """Print what one connection reaches; the problems found, one line each."""
    name = connection.name
    try:
        centers = await business_centers(api)
    except AuthError as error:
        print(f"connection {name}: TikTok refuses its access token: {error}", file=out)
        return [f"connection {name}: the token is revoked or wrong; authorize again (auth url)"]
    except TikTokError as error:
        print(f"connection {name}: /bc/get/ failed: {error}", file=out)
        return [f"connection {name}: could not list its Business Centers ({error.code})"]
    print(f"connection {name}: reaches {len(centers)} Business Center(s)", file=out)
    for center in centers:
        print(f"  {await _describe(api, center)}", file=out)
    reached = {center.bc_id: center for center in centers}
    wanted = [c.bc_id for c in centers if c.enabled] if connection.discovers else connection.bc_ids
    problems: list[str] = []
    for bc_id in wanted:
        where = f"connection {name}, business center {bc_id}"
        if bc_id not in reached:
            problems.append(f"{where}: not reachable with this token; {REACH_HINT}")
        elif not reached[bc_id].reads_payments:
            problems.append(f"{where}: the user has no Finance role; {FINANCE_HINT}")
    return problems


async def _describe(api: TikTokClient, center: ReachedCenter) -> str:
    """One Business Center: id, name, roles, zone and its number of ad accounts."""
    finance = center.finance_role or "none"
    text = (
        f"{center.bc_id} {center.name!r}: role {center.user_role or '?'}, finance {finance}, "
        f"status {center.status or '?'}, time zone {center.timezone or '?'}"
    )
    if not center.reads_payments:
        return f"{text}, ad accounts: not readable without a Finance role"
    try:
        count = await account_count(api, center.bc_id)
    except PermissionDenied:
        return f"{text}, ad accounts: refused (40001)"
    except TikTokError as error:
        return f"{text}, ad accounts: unknown ({error.code})"
    return f"{text}, {count} ad account(s)"
