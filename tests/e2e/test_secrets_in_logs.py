"""No secret in any log line or error message of an end-to-end run.

The run has an access token, a webhook secret, an SMTP password (to a server that is not
there, so failures are logged and dead-lettered) and API tokens; every log record (structlog
and the standard library), everything printed, and every dead-letter entry is searched.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import structlog
from pydantic import SecretStr
from redis.asyncio import Redis

from config.api import ApiSettings
from config.notify import EmailReceiverSettings, NotifySettings, Route
from config.settings import Settings
from tests.support.end_to_end import DRAINING, HOUR, SCENARIO, TOKEN, admin, running, wired
from tests.support.receiver import SECRET, WebhookSink
from tests.support.servers import free_port
from tests.support.streams import entries
from tests.support.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario

SMTP_PASSWORD = "smtp-pass-9d2e61a0c4"
API_TOKEN = "api-token-3f1c9b7e5d2a8c4e"


async def test_no_secret_reaches_logs_or_errors(
    settings: Settings,
    redis_client: Redis,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        hook, to_hook = sink.receiver_and_route("hook")
        # The wired run, with API tokens and a mail receiver besides the hook.
        settings = wired(settings, sandbox, sink).model_copy(
            update={
                "api": ApiSettings(port=0, tokens=[SecretStr(API_TOKEN)]),
                "notify": NotifySettings(
                    console=False,
                    receivers=[
                        hook,
                        EmailReceiverSettings(
                            name="mail",
                            host="127.0.0.1",
                            port=free_port(),  # nothing listens: every attempt fails
                            security="none",
                            username="creditwatch",
                            password=SecretStr(SMTP_PASSWORD),
                            sender="cw@example.com",
                            to=["ops@example.com"],
                            timeout_s=1,
                        ),
                    ],
                    # The hook gets every alert at once, and so does the mail after it.
                    route=Route(
                        routes=[
                            to_hook.model_copy(update={"continue_": True}),
                            Route(receiver="mail", group_wait=timedelta(0)),
                        ]
                    ),
                ),
            }
        )
        with structlog.testing.capture_logs() as logs:
            async with running(settings):

                async def tracked() -> bool:
                    key = settings.streams.key("state", DRAINING)
                    return bool(await redis_client.exists(key))

                await eventually(tracked)  # its first balance (the peak) is known
                await admin(sandbox, "/clock/advance", {"seconds": 8.5 * HOUR})

                async def alerted() -> bool:
                    return any(p["data"]["advertiser_id"] == DRAINING for p in sink.payloads())

                await eventually(alerted, within=20)

                async def mail_failed() -> bool:
                    return any(
                        "mail" in str(e) and e["log_level"] in ("warning", "error") for e in logs
                    )

                await eventually(mail_failed, within=20)

    dead = await entries(redis_client, settings.streams.deadletter)
    printed = capsys.readouterr()
    everything = "\n".join([repr(logs), caplog.text, printed.out, printed.err, repr(dead)])
    for secret in (TOKEN, SECRET, SMTP_PASSWORD, API_TOKEN):
        assert secret not in everything, f"a secret leaked: {secret[:6]}..."
    assert len(logs) > 10  # the run did log: the search was not over nothing
