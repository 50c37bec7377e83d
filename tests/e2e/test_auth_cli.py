"""The onboarding commands as a user runs them: ``creditwatch auth url|exchange|check``.

Each runs as a subprocess against a real sandbox HTTP server (its OAuth endpoints, portal
page and ``/bc/get/``). No token or secret may appear in what they print, except the new
token ``exchange`` prints once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.paths import ROOT
from tests.support.scenarios import scenario_text
from workers.sandbox import SandboxServer, parse_scenario

APP_ID = "7300000000042"
APP_SECRET = "app-secret-5e0a7c93"
TOKEN_FULL = "finance-token-81aa0c"
TOKEN_NO_FINANCE = "standard-token-3d9e42"
TOKEN_REVOKED = "revoked-token-77f1b0"
BC_A, BC_B, BC_C = "7000000000001", "7000000000002", "7000000000003"
REDIRECT = "https://example.com/tiktok/callback?team=ads"

SCENARIO = scenario_text(
    "auth_cli",
    APP_ID=APP_ID,
    APP_SECRET=APP_SECRET,
    TOKEN_FULL=TOKEN_FULL,
    BC_A=BC_A,
    TOKEN_NO_FINANCE=TOKEN_NO_FINANCE,
    BC_B=BC_B,
    TOKEN_REVOKED=TOKEN_REVOKED,
    BC_C=BC_C,
)
SECRETS = (APP_SECRET, TOKEN_FULL, TOKEN_NO_FINANCE, TOKEN_REVOKED, "default-token-1c6b2f")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


async def creditwatch(*args: str, env: dict[str, str], cwd: Path) -> Run:
    """``creditwatch ARGS`` in a process of its own; the sandbox keeps serving meanwhile."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return Run(process.returncode or 0, out.decode(), err.decode())


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(parse_scenario(SCENARIO)) as server:
        yield server


def app_env(sandbox: SandboxServer) -> dict[str, str]:
    return {
        "CREDITWATCH_TIKTOK__BASE_URL": sandbox.base_url,
        "CREDITWATCH_TIKTOK__APP_ID": APP_ID,
        "CREDITWATCH_TIKTOK__APP_SECRET": APP_SECRET,
    }


def assert_no_secrets(run: Run, *, allowed: str = "") -> None:
    for secret in SECRETS:
        if secret != allowed:
            assert secret not in run.text


async def test_url_is_the_portal_page_with_app_state_and_redirect(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run = await creditwatch(
        "auth",
        "url",
        "--redirect-uri",
        REDIRECT,
        "--state",
        "s-42",
        env=app_env(sandbox),
        cwd=tmp_path,
    )
    assert run.code == 0, run.err
    url = run.out.strip()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == sandbox.root_url
    assert parts.path == "/portal/auth"
    query = parse_qs(parts.query)
    assert query == {"app_id": [APP_ID], "state": ["s-42"], "redirect_uri": [REDIRECT]}
    assert "%3A%2F%2F" in parts.query  # the redirect URI is urlencoded, its own query too
    assert_no_secrets(run)

    again = await creditwatch(
        "auth", "url", "--redirect-uri", REDIRECT, env=app_env(sandbox), cwd=tmp_path
    )
    other = await creditwatch(
        "auth", "url", "--redirect-uri", REDIRECT, env=app_env(sandbox), cwd=tmp_path
    )
    states = [parse_qs(urlsplit(r.out.strip()).query)["state"][0] for r in (again, other)]
    assert states[0] != states[1]
    assert all(len(state) >= 16 for state in states)


async def test_url_without_an_app_id_exits_2_naming_it(tmp_path: Path) -> None:
    run = await creditwatch("auth", "url", "--redirect-uri", REDIRECT, env={}, cwd=tmp_path)
    assert run.code == 2
    [line] = run.err.strip().splitlines()
    assert "CREDITWATCH_TIKTOK__APP_ID" in line


async def test_exchange_without_the_secret_exits_2_naming_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in app_env(sandbox).items() if "SECRET" not in k}
    run = await creditwatch("auth", "exchange", "--auth-code", "x", env=env, cwd=tmp_path)
    assert run.code == 2
    assert "CREDITWATCH_TIKTOK__APP_SECRET" in run.err


async def test_the_approved_code_exchanges_once_for_a_working_token(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    url = (
        await creditwatch(
            "auth",
            "url",
            "--redirect-uri",
            REDIRECT,
            "--state",
            "s-7",
            env=app_env(sandbox),
            cwd=tmp_path,
        )
    ).out.strip()
    # The advertiser approves: the portal redirects to the app with an auth code.
    async with httpx.AsyncClient() as http:
        approval = await http.get(url)
    assert approval.status_code == 302
    back = urlsplit(approval.headers["location"])
    assert back.netloc == "example.com"
    returned = parse_qs(back.query)
    assert returned["state"] == ["s-7"]
    [code] = returned["auth_code"]

    run = await creditwatch(
        "auth", "exchange", "--auth-code", code, env=app_env(sandbox), cwd=tmp_path
    )
    assert run.code == 0, run.err
    [token_line] = [line for line in run.out.splitlines() if line.startswith("access token")]
    token = token_line.rsplit(" ", 1)[1]
    assert run.out.count(token) == 1
    assert "it reaches 3 advertisers" in run.out
    assert_no_secrets(run)

    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{sandbox.base_url}/bc/get/", headers={"Access-Token": token})
    assert reply.json()["code"] == 0
    assert len(reply.json()["data"]["list"]) == 3

    reused = await creditwatch(
        "auth", "exchange", "--auth-code", code, env=app_env(sandbox), cwd=tmp_path
    )
    assert reused.code != 0
    assert "Auth code has been used." in reused.err
    assert "40002" in reused.err
    assert token not in reused.text
    assert_no_secrets(reused)


async def test_an_expired_code_and_a_wrong_secret_exit_non_zero_with_tiktoks_message(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as http:
        issued = await http.post(f"{sandbox.admin_url}/oauth/auth_codes", json={})
        code = issued.json()["auth_code"]
        # Codes live an hour of the sandbox's own (simulated) time.
        await http.post(f"{sandbox.admin_url}/clock/advance", json={"seconds": 3601})
    expired = await creditwatch(
        "auth", "exchange", "--auth-code", code, env=app_env(sandbox), cwd=tmp_path
    )
    assert expired.code != 0
    assert "Auth code is expired." in expired.err
    assert_no_secrets(expired)

    wrong = {**app_env(sandbox), "CREDITWATCH_TIKTOK__APP_SECRET": "not-the-secret-0a9"}
    refused = await creditwatch("auth", "exchange", "--auth-code", code, env=wrong, cwd=tmp_path)
    assert refused.code != 0
    assert "app_id or secret is invalid." in refused.err
    assert "not-the-secret-0a9" not in refused.text


def connections_file(tmp_path: Path, *entries: str) -> dict[str, str]:
    config = tmp_path / "creditwatch.yaml"
    config.write_text("tiktok:\n  connections:\n" + "".join(f"    - {e}\n" for e in entries))
    return {"CREDITWATCH_CONFIG_FILE": str(config)}


async def test_check_lists_what_each_connection_reaches_and_exits_0_when_all_is_well(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = {
        **app_env(sandbox),
        **connections_file(
            tmp_path,
            f"{{name: agency-a, access_token: {TOKEN_FULL}, bc_ids: '{BC_A}'}}",
            f"{{name: agency-a2, access_token: {TOKEN_FULL}, bc_ids: discover}}",
        ),
    }
    run = await creditwatch("auth", "check", env=env, cwd=tmp_path)
    assert run.code == 0, run.text
    assert "connection agency-a: reaches 1 Business Center(s)" in run.out
    assert "connection agency-a2: reaches 1 Business Center(s)" in run.out
    assert f"{BC_A} 'Agency A': role ADMIN, finance MANAGER" in run.out
    assert "2 ad account(s)" in run.out
    assert "problem" not in run.out
    assert_no_secrets(run)


async def test_check_explains_each_problem_and_exits_1(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as http:
        revoked = await http.post(
            f"{sandbox.base_url}/oauth2/revoke_token/",
            json={"app_id": APP_ID, "secret": APP_SECRET, "access_token": TOKEN_REVOKED},
        )
    assert revoked.json()["code"] == 0
    env = {
        **app_env(sandbox),
        **connections_file(
            tmp_path,
            f"{{name: agency-a, access_token: {TOKEN_FULL}, bc_ids: '{BC_A},{BC_C}'}}",
            f"{{name: agency-b, access_token: {TOKEN_NO_FINANCE}, bc_ids: '{BC_B}'}}",
            f"{{name: agency-old, access_token: {TOKEN_REVOKED}, bc_ids: '{BC_A}'}}",
        ),
    }
    run = await creditwatch("auth", "check", env=env, cwd=tmp_path)
    assert run.code == 1, run.text
    lines = run.out.splitlines()
    assert any(
        f"connection agency-a, business center {BC_C}: not reachable with this token" in line
        and "auth url" in line
        for line in lines
    )
    assert any(
        f"connection agency-b, business center {BC_B}: the user has no Finance role" in line
        and "Finance Analyst" in line
        and "Business Center > Members" in line
        for line in lines
    )
    assert any(
        "connection agency-old: TikTok refuses its access token" in line
        and "Access token is incorrect or has been revoked." in line
        for line in lines
    )
    assert f"{BC_B} 'Agency B': role STANDARD, finance none" in run.out
    assert "3 problem(s):" in run.out
    assert_no_secrets(run)
