"""Several TikTok connections: settings, one budget per app, and a revoked token among two.

The end-to-end test runs on real parts (sandbox HTTP server, Redis, poller and service roles,
a signed-webhook receiver): two agencies' tokens, each reaching its own business center, one
of them discovering its centers through ``/bc/get/``. One token is revoked mid-run through
the OAuth endpoint: its polls fail and ``source.auth_failed`` names its connection, while
the other connection keeps polling and alerting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from redis.asyncio import Redis

from config.settings import (
    PollSettings,
    Settings,
    SettingsError,
    TikTokSettings,
    load_settings,
)
from service.detect.center import evaluate
from service.roles import poller_role
from tests.support.cli import check_config, creditwatch
from tests.support.end_to_end import admin, running, wired_with
from tests.support.receiver import SECRET, WebhookSink
from tests.support.scenarios import scenario_text
from tests.support.waiting import eventually
from workers.claims import TickClaims
from workers.contract.snapshots import SourceStatusSnapshot, parse_snapshot
from workers.oauth import OAuthClient
from workers.poller import BalancePoller, job_id, schedule, sync_polls
from workers.sandbox import SandboxServer, parse_scenario

APP_ID = "7300000000042"
APP_SECRET = "app-secret-9d2f61c0"
TOKEN_A = "agency-a-token-4c1e77"
TOKEN_B = "agency-b-token-0b93d2"
BC_A, BC_B = "7000000000001", "7000000000002"
SHOP_A, SHOP_B = "7100000000001", "7100000000002"
HOUR = 3600

SCENARIO = scenario_text(
    "tiktok_connections",
    APP_ID=APP_ID,
    APP_SECRET=APP_SECRET,
    TOKEN_A=TOKEN_A,
    BC_A=BC_A,
    TOKEN_B=TOKEN_B,
    BC_B=BC_B,
    SHOP_A=SHOP_A,
    SHOP_B=SHOP_B,
)


# -- settings ----------------------------------------------------------------------------------


def test_the_shorthand_is_one_connection_named_default() -> None:
    tiktok = TikTokSettings(access_token=SecretStr(TOKEN_A), bc_ids=[BC_A, BC_B], app_id=APP_ID)
    [connection] = tiktok.resolved_connections()
    assert connection.name == "default"
    assert connection.access_token.get_secret_value() == TOKEN_A
    assert connection.bc_ids == [BC_A, BC_B]
    assert connection.app_id == APP_ID
    assert tiktok.configured_bc_ids() == [BC_A, BC_B]


def test_connections_from_a_file_with_discover_and_their_own_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        f"tiktok:\n  app_id: '{APP_ID}'\n  connections:\n"
        f"    - {{name: agency-a, access_token: {TOKEN_A}, bc_ids: '{BC_A},{BC_B}'}}\n"
        f"    - {{name: agency-b, access_token: {TOKEN_B}, bc_ids: discover, app_id: '77'}}\n"
    )
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    settings = load_settings()
    a, b = settings.tiktok.resolved_connections()
    assert (a.name, a.bc_ids, a.app_id, a.discovers) == ("agency-a", [BC_A, BC_B], APP_ID, False)
    assert (b.name, b.bc_ids, b.app_id, b.discovers) == ("agency-b", "discover", "77", True)
    # Discovered centers are not known from the settings alone.
    assert settings.tiktok.configured_bc_ids() == [BC_A, BC_B]
    settings.require_api_access()


def test_the_shorthand_accepts_discover_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDITWATCH_TIKTOK__ACCESS_TOKEN", TOKEN_A)
    monkeypatch.setenv("CREDITWATCH_TIKTOK__BC_IDS", "discover")
    [connection] = load_settings().tiktok.resolved_connections()
    assert connection.discovers


@pytest.mark.parametrize(
    ("tiktok", "message"),
    [
        (
            {
                "access_token": TOKEN_A,
                "connections": [{"name": "a", "access_token": TOKEN_B, "bc_ids": BC_A}],
            },
            "cannot be combined with CREDITWATCH_TIKTOK__ACCESS_TOKEN",
        ),
        (
            {
                "bc_ids": [BC_A],
                "connections": [{"name": "a", "access_token": TOKEN_B, "bc_ids": BC_A}],
            },
            "use one form",
        ),
        (
            {
                "connections": [
                    {"name": "a", "access_token": TOKEN_A, "bc_ids": BC_A},
                    {"name": "a", "access_token": TOKEN_B, "bc_ids": BC_B},
                ]
            },
            "'a' is used twice",
        ),
        (
            {"connections": [{"name": "agency a", "access_token": TOKEN_A, "bc_ids": BC_A}]},
            "tiktok.connections.0.name",
        ),
        (
            {"connections": [{"name": "a", "access_token": "", "bc_ids": BC_A}]},
            "tiktok.connections.0.access_token",
        ),
        (
            {"connections": [{"name": "a", "access_token": TOKEN_A, "bc_ids": []}]},
            "tiktok.connections.0.bc_ids",
        ),
        (
            {"connections": [{"name": "a", "access_token": TOKEN_A, "bc_ids": "12 34"}]},
            "not a business center id",
        ),
    ],
)
def test_bad_connections_are_refused_naming_the_setting(
    tiktok: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(tiktok=tiktok)
    text = str(raised.value)
    assert "CREDITWATCH_TIKTOK__CONNECTIONS" in text
    assert message in text
    assert TOKEN_A not in text
    assert TOKEN_B not in text


def test_both_forms_exit_2_naming_the_setting_and_no_token(tmp_path: Path) -> None:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        f"tiktok:\n  connections:\n    - {{name: a, access_token: {TOKEN_B}, bc_ids: '{BC_A}'}}\n"
    )
    env = {"CREDITWATCH_CONFIG_FILE": str(config), "CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN_A}
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "CREDITWATCH_TIKTOK__CONNECTIONS" in line
    assert "CREDITWATCH_TIKTOK__ACCESS_TOKEN" in line
    assert TOKEN_A not in result.stderr + result.stdout
    assert TOKEN_B not in result.stderr + result.stdout


def test_check_config_masks_every_connections_token(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        f"tiktok:\n  app_secret: {APP_SECRET}\n  connections:\n"
        f"    - {{name: a, access_token: {TOKEN_A}, bc_ids: '{BC_A}'}}\n"
        f"    - {{name: b, access_token: {TOKEN_B}, bc_ids: discover}}\n",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["tiktok"]
    assert [c["access_token"] for c in shown["connections"]] == ["**********"] * 2
    assert shown["app_secret"] == "**********"
    assert [c["bc_ids"] for c in shown["connections"]] == [[BC_A], "discover"]
    for secret in (TOKEN_A, TOKEN_B, APP_SECRET):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "CREDITWATCH_TIKTOK__ACCESS_TOKEN"),
        ({"CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN_A}, "CREDITWATCH_TIKTOK__BC_IDS"),
    ],
)
def test_a_poller_without_a_connection_exits_2_naming_the_setting(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = creditwatch("poller", env=env, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert named in line


# -- stream entries and claims -----------------------------------------------------------------


def test_a_status_written_before_connections_still_parses_and_alerts() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    old = parse_snapshot(
        b'{"kind":"source_status","schema_version":1,"bc_id":"7000000000001",'
        b'"source":"bc_balance","status":"auth_failed","code":40105,'
        b'"observed_at":"2026-11-01T00:00:00Z"}'
    )
    assert isinstance(old, SourceStatusSnapshot)
    assert old.connection is None
    evaluation = evaluate(None, old)
    assert evaluation is not None
    [firing] = evaluation.transitions
    assert firing.values["connection"] == ""
    assert "of connection" not in firing.summary
    # The same source's next good poll, from a poller that names its connection, resolves it.
    ok = SourceStatusSnapshot(
        bc_id=BC_A, source="bc_balance", status="ok", observed_at=at, connection="default"
    )
    after = evaluate(evaluation.state, ok)
    assert after is not None
    assert [t.status for t in after.transitions] == ["resolved"]
    assert after.state.auth_failed == []


def test_one_connection_failing_fires_naming_it_and_the_other_does_not_resolve_it() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)

    def status(connection: str, ok: bool, seconds: int) -> SourceStatusSnapshot:
        return SourceStatusSnapshot(
            bc_id=BC_A,
            source="advertiser_balance",
            status="ok" if ok else "auth_failed",
            code=None if ok else 40105,
            observed_at=at.replace(second=seconds),
            connection=connection,
        )

    first = evaluate(None, status("agency-a", False, 1))
    assert first is not None
    [firing] = first.transitions
    assert firing.values["connection"] == "agency-a"
    assert "connection agency-a" in firing.summary
    # Another token reaching the same center polls fine: the failure of agency-a stands.
    other = evaluate(first.state, status("agency-b", True, 2))
    assert other is not None
    assert other.transitions == []
    assert other.state.auth_failed == ["advertiser_balance@agency-a"]
    back = evaluate(other.state, status("agency-a", True, 3))
    assert back is not None
    assert [t.status for t in back.transitions] == ["resolved"]


async def test_polls_follow_the_listed_centers_per_connection(settings: Settings) -> None:
    async def publish(_: object) -> int:
        return 0

    async def reject(**_: object) -> None:
        return None

    a, b = (
        BalancePoller(object(), publish, reject=reject, connection=name)  # type: ignore[arg-type]
        for name in ("agency-a", "agency-b")
    )
    scheduler = schedule([], settings)
    assert sync_polls(scheduler, [(a, 60.0)], [BC_A, BC_B], settings) == ([BC_A, BC_B], [])
    assert sync_polls(scheduler, [(b, 60.0)], [BC_A], settings) == ([BC_A], [])
    # A center gone from agency-a's listing loses its poll there only.
    assert sync_polls(scheduler, [(a, 60.0)], [BC_A], settings) == ([], [BC_B])
    assert sorted(job.id for job in scheduler.get_jobs()) == [
        f"advertiser_balance:{BC_A}@agency-a",
        f"advertiser_balance:{BC_A}@agency-b",
    ]
    # Listing the same again changes nothing.
    assert sync_polls(scheduler, [(b, 60.0)], [BC_A], settings) == ([], [])


async def test_two_connections_polling_one_center_claim_apart(
    settings: Settings, redis_client: Redis
) -> None:
    async def publish(_: object) -> int:
        return 0

    async def reject(**_: object) -> None:
        return None

    pollers = [
        BalancePoller(object(), publish, reject=reject, connection=name)  # type: ignore[arg-type]
        for name in ("agency-a", "agency-b")
    ]
    claims = TickClaims(redis_client, settings.streams, owner="replica-1")
    rival = TickClaims(redis_client, settings.streams, owner="replica-2")
    keys = [job_id(poller, BC_A) for poller in pollers]
    assert keys[0] != keys[1]
    assert [await claims.claim(key, 3600) is not None for key in keys] == [True, True]
    # Replicas still exclude each other per connection.
    assert [await rival.claim(key, 3600) is not None for key in keys] == [False, False]


# -- end to end --------------------------------------------------------------------------------


def _wired(settings: Settings, sandbox: SandboxServer, sink: WebhookSink) -> Settings:
    """Two connections of one app on the sandbox: agency A's business center, and B's found."""
    api = TikTokSettings.model_validate(
        {
            "base_url": sandbox.base_url,
            "app_id": APP_ID,
            "app_secret": APP_SECRET,
            "connections": [
                {"name": "agency-a", "access_token": TOKEN_A, "bc_ids": [BC_A]},
                {"name": "agency-b", "access_token": TOKEN_B, "bc_ids": "discover"},
            ],
        }
    )
    return wired_with(settings, api, sink)


def _of(sink: WebhookSink, kind: str, **data: str) -> list[dict[str, Any]]:
    return [
        p
        for p in sink.payloads()
        if p["type"] == kind and all(p["data"].get(k) == v for k, v in data.items())
    ]


async def test_a_revoked_token_stops_only_its_connection_and_the_alert_names_it(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = _wired(settings, sandbox, sink)
        with structlog.testing.capture_logs() as logs:
            async with running(settings) as pollers:
                # One app: both connections spend one budget; each has its own client.
                budgets = {id(poller._api.budget) for poller in pollers}
                clients = {id(poller._api) for poller in pollers}
                assert (len(budgets), len(clients)) == (1, 2)

                async def both_tracked() -> bool:
                    keys = [settings.streams.key("state", a) for a in (SHOP_A, SHOP_B)]
                    return bool(await redis_client.exists(*keys) == 2)

                # agency-b found its business center through /bc/get/.
                await eventually(both_tracked, within=20)
                assert sink.payloads() == []

                async with OAuthClient(settings.tiktok) as oauth:
                    await oauth.revoke(SecretStr(TOKEN_A))
                # Statuses are ordered by API time: the failure must be newer than the last ok.
                await admin(sandbox, "/clock/advance", {"seconds": 1})
                await eventually(lambda: _has(sink, "source.auth_failed", bc_id=BC_A), within=20)

                # agency-b keeps polling: its draining shop still raises its alerts, with 15.00
                # of 100.00 ad credit left.
                await admin(sandbox, "/clock/advance", {"seconds": 8.5 * HOUR})
                await eventually(lambda: _has(sink, "credit.low", advertiser_id=SHOP_B), within=20)
    [alert] = _of(sink, "source.auth_failed")
    data = alert["data"]
    assert data["status"] == "firing"
    assert data["bc_id"] == BC_A
    assert data["values"]["connection"] == "agency-a"
    assert data["values"]["code"] == "40105"
    assert "connection agency-a" in data["summary"]
    assert not _of(sink, "credit.low", advertiser_id=SHOP_A)
    failed = [e for e in logs if e["event"] == "poll.auth_failed"]
    assert failed
    assert {e["connection"] for e in failed} == {"agency-a"}
    logged = repr(logs)
    for secret in (TOKEN_A, TOKEN_B, APP_SECRET, SECRET):
        assert secret not in logged


async def _has(sink: WebhookSink, kind: str, **data: str) -> bool:
    return bool(_of(sink, kind, **data))


async def test_connections_of_different_apps_get_budgets_of_their_own(
    settings: Settings,
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox:
        settings = settings.model_copy(
            update={
                "tiktok": TikTokSettings.model_validate(
                    {
                        "base_url": sandbox.base_url,
                        "app_id": APP_ID,
                        "connections": [
                            {"name": "a", "access_token": TOKEN_A, "bc_ids": [BC_A]},
                            {"name": "b", "access_token": TOKEN_B, "bc_ids": [BC_B]},
                            {"name": "c", "access_token": TOKEN_B, "bc_ids": [BC_B], "app_id": "9"},
                        ],
                    }
                ),
                "poll": PollSettings(balance_interval_s=3600),
            }
        )
        async with poller_role(settings, settings.redis_url or "") as pollers:
            clients: list[Any] = [poller._api for poller in pollers]  # type: ignore[attr-defined]
            budget_of = {
                poller.connection: id(client.budget)
                for poller, client in zip(pollers, clients, strict=True)
            }
    assert budget_of["a"] == budget_of["b"]
    assert budget_of["c"] != budget_of["a"]
